-- claim_step(
--   keys=[run, outbox, job, runs_running],
--   args=[message_id, step, now, worker, deadline_ms, event, reduced_attrs, ttl, slot_limit,
--         slot_waiting_event]
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
-- slot_limit     how many runs of the run's concurrency key may run at once (this worker's setting)
-- slot_waiting_event  Event.wire() appended when the run has to wait for a slot of its key
--
-- Returns {claim, ids of runs admitted in its place...}; the claim is a value of claims.Claim:
-- first, redelivered, duplicate, stale, done, missing, cancelled (its job was paused, made invalid
-- or deleted before it started), called-off (CancelRequested, Overlap replace) or waiting (for a
-- slot of its concurrency key).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if ENDED[state] then return {'done'} end
if state == 'waiting' then return {'stale'} end  -- its turn comes with a message of its own
local step = tonumber(ARGV[2])
if step ~= tonumber(redis.call('HGET', KEYS[1], 'step') or '0') then return {'stale'} end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
if owner ~= '' and owner ~= ARGV[1] then return {'duplicate'} end
local run_id = redis.call('HGET', KEYS[1], 'run_id')
local promoted = {'called-off'}
local cancel = redis.call('HGET', KEYS[1], 'cancel') or ''
if cancel ~= '' then
  -- Cancelled while its message was on its way (or its worker died while interrupting it).
  cancel_now(run_id, now_ms(), ARGV[3], cancel, KEYS[2], promoted)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))
  return promoted
end
if step == 0 and owner == '' and (redis.call('HGET', KEYS[1], 'version') or '') ~= '' then
  local job_state = redis.call('HGET', KEYS[3], 'state')
  if job_state ~= 'valid' then
    local what = job_state == 'disabled' and 'paused' or (job_state or 'deleted')
    local why = 'the job was ' .. what .. ' before the run started'
    redis.call('HSET', KEYS[1], 'state', 'skipped', 'finished', ARGV[3], 'error', why)
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))
    promoted[1] = 'cancelled'
    release(run_id, now_ms(), promoted)
    return promoted
  end
end
local ckey = redis.call('HGET', KEYS[1], 'concurrency_key') or ''
if step == 0 and owner == '' and ckey ~= '' and redis.call('SISMEMBER', holders_key(ckey), run_id) == 0 then
  redis.call('SET', limit_key(ckey), ARGV[9])
  if slots_taken(ckey, tonumber(ARGV[9])) >= tonumber(ARGV[9]) then
    -- No slot: wait in the key's line; the message is done with (no worker thread waits).
    redis.call('HSET', KEYS[1], 'state', 'waiting', 'waits_for', 'slot')
    redis.call('RPUSH', slot_waiting_key(ckey), run_id)
    append_event(KEYS[2], ARGV[10], nil, nil)
    return {'waiting'}
  end
  redis.call('SADD', holders_key(ckey), run_id)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'state', 'running', 'worker', ARGV[4], 'step_started', ARGV[3])
-- The run's attempts are those of the step that needed most (a pipeline that never retried has 1).
local step_attempts = redis.call('HINCRBY', KEYS[1], 'step_attempts', 1)
if step_attempts > tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') then
  redis.call('HSET', KEYS[1], 'attempts', step_attempts)
end
redis.call('ZADD', KEYS[4], ARGV[5], run_id)
if owner == ARGV[1] then return {'redelivered'} end
if step == 0 then redis.call('HSET', KEYS[1], 'started', ARGV[3]) end
local attrs = nil
if not definition_is_current(KEYS[1], KEYS[3]) then attrs = ARGV[7] end
append_event(KEYS[2], ARGV[6], attrs, nil)
return {'first'}
