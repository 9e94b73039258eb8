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
local run = run_fields(KEYS[1])
if run.owner ~= ARGV[1] then return {-1} end
redis.call('HSET', KEYS[1], 'state', 'failed', 'finished', ARGV[2], 'owner', '', 'error', ARGV[3])
-- `release`, in end_run, takes the run out of runs_running.
return end_run(KEYS[1], KEYS[3], KEYS[2], ARGV[5], ARGV[6], tonumber(ARGV[4]), false, ARGV[2], run)
