-- finish_step(
--   keys=[run, outbox, job, runs_pending, runs_running],
--   args=[message_id, step, now, step_result, is_last, now_ms, ttl, event, reduced_attrs]
-- )
-- needs: helpers
--
-- step_result    the step's result (JSON)
-- is_last        '1' when this is the run's last step
-- now_ms         the run's score in runs_pending while its next step is being sent
-- ttl            seconds an ended run's record is kept
-- event          Event.wire() of the Succeeded event (appended after the last step only)
-- reduced_attrs  the attributes that event may carry for a run of an old definition
--
-- Returns {-1} when the caller no longer owns the step; {0} after an intermediate step (the run is
-- pending for its next step); {-2, now_ms, admitted ids...} when the run was cancelled meanwhile
-- (a pipeline stops at the step that was running); else {the job's new run count, now_ms,
-- ids of the runs admitted in its place...}.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {-1} end
local step = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[1], 'step')) ~= step then return {-1} end
local run_id = redis.call('HGET', KEYS[1], 'run_id')
redis.call('ZREM', KEYS[5], run_id)
redis.call('HSET', KEYS[1], 'result:' .. ARGV[2], ARGV[4])
local cancel = redis.call('HGET', KEYS[1], 'cancel') or ''
if ARGV[5] ~= '1' and cancel ~= '' then
  local now = tonumber(ARGV[6])
  local promoted = {-2, now}
  cancel_now(run_id, now, ARGV[3], cancel, KEYS[2], promoted)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
  return promoted
end
if ARGV[5] ~= '1' then
  redis.call('HSET', KEYS[1], 'step', step + 1, 'owner', '', 'state', 'queued', 'step_attempts', 0)
  redis.call('ZADD', KEYS[4], ARGV[6], run_id)
  return {0}
end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'finished', ARGV[3], 'owner', '', 'result', ARGV[4])
return end_run(KEYS[1], KEYS[3], KEYS[2], ARGV[8], ARGV[9], tonumber(ARGV[7]), true, ARGV[3])
