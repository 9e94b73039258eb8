-- advance_last_fire(
--   keys=[last_fire],
--   args=[item_id, fire]
-- )
--
-- last_fire  the hash item -> the newest scheduled time handled (Alloy's DateTime text, which
--            sorts as time)
--
-- Advances the job's mark, never backwards. Returns 1 if this call advanced it, else 0.
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if ARGV[2] <= current then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
