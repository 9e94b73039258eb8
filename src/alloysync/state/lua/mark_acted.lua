-- mark_acted(
--   keys=[lease, job, jobs_with_max_age],
--   args=[lease_value, version, registry_digest, decided_json, item_id]
-- )
-- needs: helpers
--
-- jobs_with_max_age  the set of jobs whose decision has a MaxAge (the freshness check's index)
--
-- Records that `version` of the job was acted upon (runs, schedule, events taken) with the task
-- registry of `registry_digest`, and stores the decided fields (a JSON object); the job joins
-- `jobs_with_max_age` when the decision has a MaxAge and leaves it when it no longer has one.
-- Returns 1, 0 when a newer version arrived meanwhile, -1 when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
local stored = redis.call('HMGET', KEYS[2], 'version', 'max_age')
if stored[1] ~= ARGV[2] then return 0 end
local decided = cjson.decode(ARGV[4])
local fields = {'acted', ARGV[2], 'acted_registry', ARGV[3]}
for name, value in pairs(decided) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[2], unpack(fields))
if (decided['max_age'] or '') ~= '' then
  redis.call('SADD', KEYS[3], ARGV[5])
elseif (stored[2] or '') ~= '' then
  redis.call('SREM', KEYS[3], ARGV[5])
end
return 1
