-- mark_reported(
--   keys=[reported],
--   args=[item_id, entry_id]
-- )
--
-- reported  the hash item -> id of the newest outbox entry written to Alloy
-- entry_id  a stream entry id (<ms>-<seq>)
--
-- Keeps the newest id written per item. Returns 1 if `entry_id` is newer, else 0.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local cm, cs = string.match(current, '(%d+)-(%d+)')
  local nm, ns = string.match(ARGV[2], '(%d+)-(%d+)')
  cm, cs, nm, ns = tonumber(cm), tonumber(cs), tonumber(nm), tonumber(ns)
  if nm < cm or (nm == cm and ns <= cs) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
