-- report_written(
--   keys=[jobs, outbox, job_1, ..., job_n],
--   args=[group, then per item: item_id, written, entry_id, signature, finished_flags, view_count,
--         entry_count, view name/value pairs... (view_count pairs), entry ids... (entry_count)]
-- )
--
-- jobs            the set of known job item ids
-- outbox          the outbox stream
-- group           the outbox's consumer group
-- job_i           item i's job hash (`job:{item}`); its `reported` field is the id of the newest
--                 outbox entry written to Alloy for the item
-- written         '1' when an edit of the item succeeded (the fields below describe it), '0' when
--                 the item only has a view to record
-- entry_id        the newest entry the edit carried (<ms>-<seq>)
-- signature       the signature Alloy's answer to the edit carried ('' = none)
-- finished_flags  the request flags ('request', 'cancel', 'backfill') whose reset the edit carried,
--                 comma-separated ('' = none)
-- view_*          the jobs page's view of the item's latest events (`view_*` fields)
-- entry ids       every entry the edit carried (acknowledged and deleted)
--
-- What the reporter learnt for a batch of items, in one step, with one read and one write of each
-- job hash:
--   - `reported` keeps the newest entry id written for the item (it never goes back);
--   - the job caches the signature the edit returned (the newest there is: its time is now,
--     later than any view's, as apply_definition.lua orders them), for the next edit;
--   - each finished flag is reset as finish_request.lua does: views requested before now may
--     still show it set and must not start another request;
--   - the view fields are set for a *known* job only (an item that is not one gets no view);
--   - the entries are acknowledged and deleted, last, so a script that did not run leaves them
--     pending and the edit is made again (the same values: harmless).
-- Returns the number of entries acknowledged.
local PER_ITEM = 7
local now = nil
local function now_ms()
  if not now then
    local time = redis.call('TIME')
    now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  end
  return now
end

local function newer_than(stored, entry_id)
  if not stored then return true end
  local cm, cs = string.match(stored, '(%d+)-(%d+)')
  local nm, ns = string.match(entry_id, '(%d+)-(%d+)')
  cm, cs, nm, ns = tonumber(cm), tonumber(cs), tonumber(nm), tonumber(ns)
  return nm > cm or (nm == cm and ns > cs)
end

-- Where each item's arguments start, and which items have a view (asked about in one SMISMEMBER).
local starts, viewed = {}, {}
local at = 2
for i = 3, #KEYS do
  starts[i] = at
  if tonumber(ARGV[at + 5]) > 0 then viewed[#viewed + 1] = ARGV[at] end
  at = at + PER_ITEM + 2 * tonumber(ARGV[at + 5]) + tonumber(ARGV[at + 6])
end
local known = {}
if #viewed > 0 then
  local answers = redis.call('SMISMEMBER', KEYS[1], unpack(viewed))
  for n, item in ipairs(viewed) do known[item] = answers[n] == 1 end
end

local entries = {}
for i = 3, #KEYS do
  local first = starts[i]
  local item, written, entry_id, signature, flags = ARGV[first], ARGV[first + 1], ARGV[first + 2],
    ARGV[first + 3], ARGV[first + 4]
  local view_count, entry_count = tonumber(ARGV[first + 5]), tonumber(ARGV[first + 6])
  local fields = {}
  if written == '1' then
    local stored = redis.call('HMGET', KEYS[i], 'reported', 'signature_at')
    if newer_than(stored[1], entry_id) then
      fields[#fields + 1] = 'reported'
      fields[#fields + 1] = entry_id
    end
    if signature ~= '' and now_ms() >= (tonumber(stored[2] or '0') or 0) then
      fields[#fields + 1] = 'signature'
      fields[#fields + 1] = signature
      fields[#fields + 1] = 'signature_at'
      fields[#fields + 1] = now_ms()
    end
    for flag in string.gmatch(flags, '[^,]+') do
      fields[#fields + 1] = flag .. '_pending'
      fields[#fields + 1] = '0'
      fields[#fields + 1] = flag .. '_after'
      fields[#fields + 1] = now_ms()
    end
  end
  local views = first + PER_ITEM
  if view_count > 0 and known[item] then
    for n = views, views + 2 * view_count - 1 do fields[#fields + 1] = ARGV[n] end
  end
  if #fields > 0 then redis.call('HSET', KEYS[i], unpack(fields)) end
  for n = views + 2 * view_count, views + 2 * view_count + entry_count - 1 do
    entries[#entries + 1] = ARGV[n]
  end
end

for first = 1, #entries, 1000 do  -- in slices: unpack's limit on results
  local last = math.min(#entries, first + 999)
  redis.call('XACK', KEYS[2], ARGV[1], unpack(entries, first, last))
  redis.call('XDEL', KEYS[2], unpack(entries, first, last))
end
return #entries
