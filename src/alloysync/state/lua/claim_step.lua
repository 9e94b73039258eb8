-- claim_step(
--   keys=[run, outbox, job, runs_running],
--   args=[message_id, step, now, worker, deadline_ms, event, reduced_attrs, ttl]
-- )
-- needs: helpers
--
-- message_id     the Dramatiq message delivering the step: it becomes the step's owner
-- now            the time of the claim (Alloy's DateTime text)
-- worker         host:pid of the worker process
-- deadline_ms    when the step must be over, however its retries go (the run's score in runs_running)
-- event          Event.wire() of the Running event, appended on the first claim of a step
-- reduced_attrs  the attributes that event may carry for a run of an old definition
-- ttl            seconds a cancelled run's record is kept
--
-- Returns the claim (the values of claims.Claim): first, redelivered, duplicate, stale, done,
-- missing or cancelled.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'succeeded' or state == 'failed' or state == 'skipped' then return 'done' end
local step = tonumber(ARGV[2])
if step ~= tonumber(redis.call('HGET', KEYS[1], 'step') or '0') then return 'stale' end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
if owner ~= '' and owner ~= ARGV[1] then return 'duplicate' end
if step == 0 and owner == '' and (redis.call('HGET', KEYS[1], 'version') or '') ~= '' then
  local job_state = redis.call('HGET', KEYS[3], 'state')
  if job_state ~= 'valid' then
    local what = job_state == 'disabled' and 'paused' or (job_state or 'deleted')
    local why = 'the job was ' .. what .. ' before the run started'
    redis.call('HSET', KEYS[1], 'state', 'skipped', 'finished', ARGV[3], 'error', why)
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))
    return 'cancelled'
  end
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'state', 'running', 'worker', ARGV[4], 'step_started', ARGV[3])
-- The run's attempts are those of the step that needed most (a pipeline that never retried has 1).
local step_attempts = redis.call('HINCRBY', KEYS[1], 'step_attempts', 1)
if step_attempts > tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') then
  redis.call('HSET', KEYS[1], 'attempts', step_attempts)
end
redis.call('ZADD', KEYS[4], ARGV[5], redis.call('HGET', KEYS[1], 'run_id'))
if owner == ARGV[1] then return 'redelivered' end
if step == 0 then redis.call('HSET', KEYS[1], 'started', ARGV[3]) end
local attrs = nil
if not definition_is_current(KEYS[1], KEYS[3]) then attrs = ARGV[7] end
append_event(KEYS[2], ARGV[6], attrs, nil)
return 'first'
