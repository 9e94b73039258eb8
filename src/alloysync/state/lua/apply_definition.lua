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
-- Returns {version, acted version, acted registry digest, time the version was first seen,
-- the version whose once-now run was created, the phase last decided, 1 if the job has a schedule
-- entry else 0}, or {-1} when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return {-1} end
redis.call('SADD', KEYS[3], ARGV[2])
if ARGV[4] ~= '' then redis.call('HSETNX', KEYS[2], 'run_count', ARGV[4]) end
if redis.call('HGET', KEYS[2], 'fingerprint') ~= ARGV[3] then
  local fields = {'fingerprint', ARGV[3]}
  for name, value in pairs(cjson.decode(ARGV[5])) do
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('HINCRBY', KEYS[2], 'version', 1)
end
redis.call('HSETNX', KEYS[2], 'first_seen', redis.call('HGET', KEYS[2], 'changed') or '')
local job = redis.call('HMGET', KEYS[2], 'version', 'acted', 'acted_registry', 'changed', 'now_version', 'state',
  'signature_at')
if ARGV[6] ~= '' and tonumber(ARGV[7]) >= (tonumber(job[7] or '0') or 0) then
  redis.call('HSET', KEYS[2], 'signature', ARGV[6], 'signature_at', ARGV[7])
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[2], 'title', ARGV[8]) end
end
local scheduled = redis.call('HEXISTS', KEYS[4], ARGV[2])
return {tonumber(job[1]), tonumber(job[2] or '0'), job[3] or '', job[4] or '', tonumber(job[5] or '0'), job[6] or '',
  scheduled}
