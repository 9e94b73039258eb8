-- report_written(
--   keys=[reported, job, outbox],
--   args=[item_id, entry_id, signature, group, finished_flags, entry_ids...]
-- )
--
-- reported        the hash item -> id of the newest outbox entry written to Alloy
-- job             the item's job hash (`job:{item}`)
-- outbox          the outbox stream
-- entry_id        the newest entry the edit carried (<ms>-<seq>)
-- signature       the signature Alloy's answer to the edit carried ('' = none)
-- group           the outbox's consumer group
-- finished_flags  the request flags ('request', 'cancel', 'backfill') whose reset the edit carried,
--                 comma-separated ('' = none)
-- entry_ids       every entry the edit carried (acknowledged and deleted)
--
-- Everything that follows an Alloy edit that succeeded, in one step (the reporter's one round trip
-- per edit):
--   - `reported` keeps the newest entry id written per item (it never goes back);
--   - the job caches the signature the edit returned (the newest there is: its time is now,
--     later than any view's, as apply_definition.lua orders them), for the next edit;
--   - each finished flag is reset as finish_request.lua does: views requested before now may
--     still show it set and must not start another request;
--   - the entries are acknowledged and deleted, last, so a script that did not run leaves them
--     pending and the edit is made again (the same values: harmless).
-- Returns the number of entries acknowledged.
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)

local newer = true
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local cm, cs = string.match(current, '(%d+)-(%d+)')
  local nm, ns = string.match(ARGV[2], '(%d+)-(%d+)')
  cm, cs, nm, ns = tonumber(cm), tonumber(cs), tonumber(nm), tonumber(ns)
  newer = nm > cm or (nm == cm and ns > cs)
end
if newer then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end

if ARGV[3] ~= '' and now >= (tonumber(redis.call('HGET', KEYS[2], 'signature_at') or '0') or 0) then
  redis.call('HSET', KEYS[2], 'signature', ARGV[3], 'signature_at', now)
end

for flag in string.gmatch(ARGV[5], '[^,]+') do
  redis.call('HSET', KEYS[2], flag .. '_pending', '0', flag .. '_after', now)
end

for first = 6, #ARGV, 1000 do  -- in slices: unpack's limit on results
  local last = math.min(#ARGV, first + 999)
  redis.call('XACK', KEYS[3], ARGV[4], unpack(ARGV, first, last))
  redis.call('XDEL', KEYS[3], unpack(ARGV, first, last))
end
return math.max(0, #ARGV - 5)
