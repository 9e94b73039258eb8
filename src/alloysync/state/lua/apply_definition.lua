-- apply_definition(
--   keys=[lease, jobs, schedules, job_1, ..., job_n],
--   args=[lease_value, then per record: item_id, fingerprint, run_count, decided_json, signature,
--         read_ms, title]
-- )
-- needs: helpers
--
-- lease         the poller lease; nothing is written unless `lease_value` holds it
-- jobs          the set of known job ids
-- schedules     the hash item -> schedule entry (only read: whether the job has an entry)
-- job_i         alloysync:job:{item_i}, the job record of the i-th record
-- run_count     the record's Run count, seeding the job's count the first time ('' = none)
-- decided_json  a JSON object of the decided fields, stored only with a new version
-- signature     the view's item signature ('' = the view carried none: the cache is left alone)
-- read_ms       Redis time just before the view was requested: the signature and the title are
--               kept only if no newer view's signature is cached
-- title         the record's title ('' leaves it)
--
-- Stores the definitions of a page of records, in one step: for each, a new version when its
-- fingerprint is new. Records when alloysync first saw the job (`first_seen`, the decided
-- `changed` of its first version). The lease is checked, the jobs joined and the schedule entries
-- read once for the page; each job hash is read once (HMGET) and written once (HSET), whatever
-- changed. Returns, per record in order, {version, acted version, acted registry digest, time the
-- version was first seen, the version whose once-now run was created, the phase last decided, 1 if
-- the job has a schedule entry else 0}; or -1 when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
local PER_RECORD = 7
local count = (#ARGV - 1) / PER_RECORD
if count == 0 then return {} end
local items = {}
for i = 1, count do items[i] = ARGV[2 + (i - 1) * PER_RECORD] end
redis.call('SADD', KEYS[2], unpack(items))
local scheduled = redis.call('HMGET', KEYS[3], unpack(items))

local NAMES = {'version', 'acted', 'acted_registry', 'changed', 'now_version', 'state', 'signature_at',
  'fingerprint', 'first_seen', 'run_count'}
local replies = {}
for i = 1, count do
  local at = 1 + (i - 1) * PER_RECORD  -- ARGV[at + 1] is the item id
  local job_key = KEYS[3 + i]
  local fingerprint, run_count, decided = ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  local signature, read_ms, title = ARGV[at + 5], ARGV[at + 6], ARGV[at + 7]
  local stored = redis.call('HMGET', job_key, unpack(NAMES))
  local job = {}
  for n, name in ipairs(NAMES) do job[name] = stored[n] or nil end

  local fields = {}
  local function set(name, value)
    fields[#fields + 1] = name
    fields[#fields + 1] = value
    job[name] = value
  end

  if run_count ~= '' and not job.run_count then set('run_count', run_count) end
  if not job.version then
    set('waiters', '0')  -- a new job has no run waiting (promote_job in helpers.lua)
  end
  if job.fingerprint ~= fingerprint then
    set('fingerprint', fingerprint)
    for name, value in pairs(cjson.decode(decided)) do set(name, value) end
    set('version', tostring((tonumber(job.version or '0') or 0) + 1))
  end
  if not job.first_seen then set('first_seen', job.changed or '') end
  if signature ~= '' and tonumber(read_ms) >= (tonumber(job.signature_at or '0') or 0) then
    set('signature', signature)
    set('signature_at', read_ms)
    if title ~= '' then set('title', title) end
  end
  if #fields > 0 then redis.call('HSET', job_key, unpack(fields)) end
  replies[i] = {tonumber(job.version), tonumber(job.acted or '0'), job.acted_registry or '', job.changed or '',
    tonumber(job.now_version or '0'), job.state or '', scheduled[i] and 1 or 0}
end
return replies
