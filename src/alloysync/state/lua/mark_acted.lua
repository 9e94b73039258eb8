-- mark_acted(
--   keys=[lease, job],
--   args=[lease_value, version, registry_digest, decided_json]
-- )
-- needs: helpers
--
-- Records that `version` of the job was acted upon (runs, schedule, events taken) with the task
-- registry of `registry_digest`, and stores the decided fields (a JSON object).
-- Returns 1, 0 when a newer version arrived meanwhile, -1 when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
if redis.call('HGET', KEYS[2], 'version') ~= ARGV[2] then return 0 end
local fields = {'acted', ARGV[2], 'acted_registry', ARGV[3]}
for name, value in pairs(cjson.decode(ARGV[4])) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[2], unpack(fields))
return 1
