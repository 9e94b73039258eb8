-- cancel_run(
--   keys=[run, outbox],
--   args=[message_id, now_iso, reason, ttl]
-- )
-- needs: helpers
--
-- message_id  the Dramatiq message that owned the interrupted step
-- reason      the run's Message (e.g. "Cancelled by CancelRequested")
-- ttl         seconds the cancelled run's record is kept
--
-- The worker interrupted a cancelled run's step (it is not retried). Returns {-1} when the caller
-- no longer owns the step, else {1, now_ms, ids of the runs admitted in its place...}.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {-1} end
local now = now_ms()
local promoted = {1, now}
cancel_now(redis.call('HGET', KEYS[1], 'run_id'), now, ARGV[2], ARGV[3], KEYS[2], promoted)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return promoted
