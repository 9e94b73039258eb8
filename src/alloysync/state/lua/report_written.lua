-- report_written(
--   keys=[job, outbox],
--   args=[entry_id, signature, group, finished_flags, entry_ids...]
-- )
--
-- job             the item's job hash (`job:{item}`); its `reported` field is the id of the newest
--                 outbox entry written to Alloy for the item
-- outbox          the outbox stream
-- entry_id        the newest entry the edit carried (<ms>-<seq>)
-- signature       the signature Alloy's answer to the edit carried ('' = none)
-- group           the outbox's consumer group
-- finished_flags  the request flags ('request', 'cancel', 'backfill') whose reset the edit carried,
--                 comma-separated ('' = none)
-- entry_ids       every entry the edit carried (acknowledged and deleted)
--
-- Everything that follows an Alloy edit that succeeded, in one step (the reporter's one round trip
-- per edit), with one read and one write of the job hash:
--   - `reported` keeps the newest entry id written for the item (it never goes back);
--   - the job caches the signature the edit returned (the newest there is: its time is now,
--     later than any view's, as apply_definition.lua orders them), for the next edit;
--   - each finished flag is reset as finish_request.lua does: views requested before now may
--     still show it set and must not start another request;
--   - the entries are acknowledged and deleted, last, so a script that did not run leaves them
--     pending and the edit is made again (the same values: harmless).
-- Returns the number of entries acknowledged.
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local stored = redis.call('HMGET', KEYS[1], 'reported', 'signature_at')
local fields = {}

local newer = true
if stored[1] then
  local cm, cs = string.match(stored[1], '(%d+)-(%d+)')
  local nm, ns = string.match(ARGV[1], '(%d+)-(%d+)')
  cm, cs, nm, ns = tonumber(cm), tonumber(cs), tonumber(nm), tonumber(ns)
  newer = nm > cm or (nm == cm and ns > cs)
end
if newer then
  fields[#fields + 1] = 'reported'
  fields[#fields + 1] = ARGV[1]
end
if ARGV[2] ~= '' and now >= (tonumber(stored[2] or '0') or 0) then
  fields[#fields + 1] = 'signature'
  fields[#fields + 1] = ARGV[2]
  fields[#fields + 1] = 'signature_at'
  fields[#fields + 1] = now
end
for flag in string.gmatch(ARGV[4], '[^,]+') do
  fields[#fields + 1] = flag .. '_pending'
  fields[#fields + 1] = '0'
  fields[#fields + 1] = flag .. '_after'
  fields[#fields + 1] = now
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end

for first = 5, #ARGV, 1000 do  -- in slices: unpack's limit on results
  local last = math.min(#ARGV, first + 999)
  redis.call('XACK', KEYS[2], ARGV[3], unpack(ARGV, first, last))
  redis.call('XDEL', KEYS[2], unpack(ARGV, first, last))
end
return math.max(0, #ARGV - 4)
