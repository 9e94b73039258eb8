-- park_step(
--   keys=[run, outbox, job, runs_running, runs_pending],
--   args=[message_id, step, now_iso, wake_score_ms, event, reduced_attrs, ttl]
-- )
-- needs: helpers
--
-- message_id      the Dramatiq message that owns the step (wait.until asked it to sleep)
-- now_iso         the time (Alloy's DateTime text), for a cancellation found here
-- wake_score_ms   the run's score in runs_pending: when recovery sends the step again if the
--                 delayed message that wakes it never arrives (its wake time plus a margin)
-- event           Event.wire() of the Sleeping event (Status Running, Message "sleeps until ...")
-- reduced_attrs   the attributes that event may carry for a run of an old definition
-- ttl             seconds a cancelled run's record is kept
--
-- The step sleeps without holding a worker: the run goes back to `queued` at the same step with no
-- owner (so a cancel ends it at once, and the delayed message that wakes it claims the step like a
-- first delivery), leaves runs_running (it has no deadline while it sleeps) and waits in
-- runs_pending for recovery in case its message is lost. Its concurrency slot and its place among
-- its job's active runs stay taken: the run is still in progress.
-- Returns {1} when parked, {-1} when the caller no longer owns the step, or {-2, now_ms, ids of
-- runs admitted in its place...} when the run was being cancelled (it is cancelled now).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {-1} end
if tonumber(redis.call('HGET', KEYS[1], 'step') or '0') ~= tonumber(ARGV[2]) then return {-1} end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return {-1} end
local run_id = redis.call('HGET', KEYS[1], 'run_id')
local cancel = redis.call('HGET', KEYS[1], 'cancel') or ''
if cancel ~= '' then
  local now = now_ms()
  local promoted = {-2, now}
  cancel_now(run_id, now, ARGV[3], cancel, KEYS[2], promoted)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
  return promoted
end
-- The claim that wakes the step counts an attempt: this one was not a failed attempt.
local step_attempts = tonumber(redis.call('HGET', KEYS[1], 'step_attempts') or '0')
redis.call('HSET', KEYS[1], 'state', 'queued', 'owner', '', 'step_attempts', math.max(0, step_attempts - 1))
redis.call('ZREM', KEYS[4], run_id)
redis.call('ZADD', KEYS[5], ARGV[4], run_id)
local attrs = nil
if not definition_is_current(KEYS[1], KEYS[3]) then attrs = ARGV[6] end
append_event(KEYS[2], ARGV[5], attrs, nil)
return {1}
