-- create_run(
--   keys=[run, runs_pending, outbox, job_runs, lease],
--   args=[run_id, now_ms, history_len, record_json, event, lease_value]
-- )
-- needs: helpers
--
-- run           alloysync:run:{run_id}, created only if it does not exist (the idempotency key)
-- runs_pending  zset of runs whose message may not be on a queue yet, scored by `now_ms`
-- job_runs      the job's recent run ids, newest first, kept to `history_len`
-- record_json   a JSON object: the new run record's fields
-- event         Event.wire() of the Queued event
-- lease_value   the poller's lease, or '' when the caller is not the poller
--
-- Returns 1 when the run was created, 0 when it existed already, -1 when the lease is lost.
if not holds_lease(KEYS[5], ARGV[6]) then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local hash = {}
for name, value in pairs(cjson.decode(ARGV[4])) do
  hash[#hash + 1] = name
  hash[#hash + 1] = value
end
redis.call('HSET', KEYS[1], unpack(hash))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
append_event(KEYS[3], ARGV[5], nil, nil)
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)
return 1
