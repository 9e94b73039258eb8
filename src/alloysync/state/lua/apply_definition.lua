-- apply_definition(
--   keys=[lease, job, jobs, schedules],
--   args=[lease_value, item_id, fingerprint, run_count, decided_json, signature, read_ms, title]
-- )
-- needs: helpers
--
-- lease         the poller lease; nothing is written unless `lease_value` holds it
-- job           alloysync:job:{item}, the job record
-- jobs          the set of known job ids
-- schedules     the hash item -> schedule entry (only read: whether the job has an entry)
-- run_count     the record's Run count, seeding the job's count the first time ('' = none)
-- decided_json  a JSON object of the decided fields, stored only with a new version
-- signature     the view's item signature ('' = the view carried none: the cache is left alone)
-- read_ms       Redis time just before the view was requested: the signature and the title are
--               kept only if no newer view's signature is cached
-- title         the record's title ('' leaves it)
--
-- Stores a definition: a new version when its fingerprint is new.
-- Records when alloysync first saw the job (`first_seen`, the decided `changed` of its first version).
-- The job hash is read once (HMGET) and written once (HSET), whatever changed.
-- Returns {version, acted version, acted registry digest, time the version was first seen,
-- the version whose once-now run was created, the phase last decided, 1 if the job has a schedule
-- entry else 0}, or {-1} when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return {-1} end
redis.call('SADD', KEYS[3], ARGV[2])
local NAMES = {'version', 'acted', 'acted_registry', 'changed', 'now_version', 'state', 'signature_at',
  'fingerprint', 'first_seen', 'run_count'}
local stored = redis.call('HMGET', KEYS[2], unpack(NAMES))
local job = {}
for i, name in ipairs(NAMES) do job[name] = stored[i] or nil end

local fields = {}
local function set(name, value)
  fields[#fields + 1] = name
  fields[#fields + 1] = value
  job[name] = value
end

if ARGV[4] ~= '' and not job.run_count then set('run_count', ARGV[4]) end
if job.fingerprint ~= ARGV[3] then
  set('fingerprint', ARGV[3])
  for name, value in pairs(cjson.decode(ARGV[5])) do set(name, value) end
  set('version', tostring((tonumber(job.version or '0') or 0) + 1))
end
if not job.first_seen then set('first_seen', job.changed or '') end
if ARGV[6] ~= '' and tonumber(ARGV[7]) >= (tonumber(job.signature_at or '0') or 0) then
  set('signature', ARGV[6])
  set('signature_at', ARGV[7])
  if ARGV[8] ~= '' then set('title', ARGV[8]) end
end
if #fields > 0 then redis.call('HSET', KEYS[2], unpack(fields)) end
local scheduled = redis.call('HEXISTS', KEYS[4], ARGV[2])
return {tonumber(job.version), tonumber(job.acted or '0'), job.acted_registry or '', job.changed or '',
  tonumber(job.now_version or '0'), job.state or '', scheduled}
