-- remember_item(
--   keys=[job],
--   args=[signature, read_ms, title]
-- )
-- needs: helpers
--
-- read_ms  Redis time just before the view was requested; '' = now (a signature our own edit
--          just returned)
-- title    the record's title ('' leaves it)
--
-- Keeps the signature of the newest view of the item: views are ordered by the time they were
-- requested (real Alloy items carry no edit date to order them by). Returns 1 if kept, else 0.
local read_ms = tonumber(ARGV[2])
if read_ms == nil then read_ms = now_ms() end
if read_ms < (tonumber(redis.call('HGET', KEYS[1], 'signature_at') or '0') or 0) then return 0 end
redis.call('HSET', KEYS[1], 'signature', ARGV[1], 'signature_at', read_ms)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'title', ARGV[3]) end
return 1
