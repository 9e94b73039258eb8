-- fail_run(
--   keys=[run, outbox, job, runs_running],
--   args=[message_id, now, error, ttl, event, reduced_attrs]
-- )
-- needs: helpers
--
-- error          why the run failed (kept on the record)
-- ttl            seconds an ended run's record is kept
-- event          Event.wire() of the Failed event
-- reduced_attrs  the attributes that event may carry for a run of an old definition
--
-- Returns {-1} when the caller no longer owns the step, else {the job's new run count, now_ms,
-- ids of the runs admitted in its place...}.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {-1} end
redis.call('ZREM', KEYS[4], redis.call('HGET', KEYS[1], 'run_id'))
redis.call('HSET', KEYS[1], 'state', 'failed', 'finished', ARGV[2], 'owner', '', 'error', ARGV[3])
return end_run(KEYS[1], KEYS[3], KEYS[2], ARGV[5], ARGV[6], tonumber(ARGV[4]), false, ARGV[2])
