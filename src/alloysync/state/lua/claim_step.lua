-- claim_step(
--   keys=[run, outbox, runs_running],
--   args=[message_id, step, now, worker, deadline_ms, ttl, limits]
-- )
-- needs: helpers
--
-- message_id     the Dramatiq message delivering the step: it becomes the step's owner
-- step           the step the message delivers
-- now            the time of the claim (Alloy's DateTime text)
-- worker         host:pid of the worker process
-- deadline_ms    when the step must be over, however its retries go (the run's score in runs_running)
-- ttl            seconds a cancelled run's record is kept
-- limits         ALLOYSYNC_CONCURRENCY_LIMITS as JSON {key: runs at once} (a key not in it: 1)
--
-- Loads and claims in one round trip: the run hash is read once (HGETALL) and every decision is
-- made on that copy. The job's hash (job:{item}, from the run's `item`) is read for a run of a
-- definition version; the caller cannot name it before the run is read. The events it appends are composed here from the record: Running on the first
-- claim of a step (its Message names the step; for a run of an old definition only the start time),
-- or the wait for a slot of the run's concurrency key.
--
-- Returns {claim, {ids of runs admitted in its place...}, {the run's fields as read before the
-- claim: name, value, ...}}; the claim is a value of claims.Claim: first, redelivered, duplicate,
-- stale, done, missing, cancelled (its job was paused, made invalid or deleted before it started),
-- called-off (CancelRequested, Overlap replace) or waiting (for a slot of its concurrency key).
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {'missing', {}, {}} end
local run = {}
for i = 1, #fields, 2 do run[fields[i]] = fields[i + 1] end
local none = {}
if ENDED[run.state] then return {'done', none, fields} end
if run.state == 'waiting' then return {'stale', none, fields} end  -- its turn comes with a message of its own
local step = tonumber(ARGV[2])
if step ~= (tonumber(run.step) or 0) then return {'stale', none, fields} end
local owner = run.owner or ''
if owner ~= '' and owner ~= ARGV[1] then return {'duplicate', none, fields} end
local run_id, now_iso, ttl = run.run_id, ARGV[3], tonumber(ARGV[6])
local admitted = {}
if (run.cancel or '') ~= '' then
  -- Cancelled while its message was on its way (or its worker died while interrupting it).
  cancel_now(run_id, now_ms(), now_iso, run.cancel, KEYS[2], admitted)
  redis.call('EXPIRE', KEYS[1], ttl)
  return {'called-off', admitted, fields}
end
local version = run.version or ''
local job_state, job_version = false, false
if version ~= '' then
  local job = redis.call('HMGET', PREFIX .. 'job:' .. (run.item or ''), 'state', 'version')
  job_state, job_version = job[1], job[2]
end
if step == 0 and owner == '' and version ~= '' and job_state ~= 'valid' then
  local what = job_state == 'disabled' and 'paused' or (job_state or 'deleted')
  local why = 'the job was ' .. what .. ' before the run started'
  redis.call('HSET', KEYS[1], 'state', 'skipped', 'finished', now_iso, 'error', why)
  redis.call('EXPIRE', KEYS[1], ttl)
  release(run_id, now_ms(), admitted, run)
  return {'cancelled', admitted, fields}
end

-- Append an event of this run (the fields of Event.wire(), in its order).
local function append(kind, attrs, details)
  redis.call('XADD', KEYS[2], '*', 'item', run.item or '', 'kind', kind, 'run', run_id, 'at', now_iso,
    'attrs', cjson.encode(attrs), 'details', cjson.encode(details))
end

local ckey = run.concurrency_key or ''
if step == 0 and owner == '' and ckey ~= '' and redis.call('SISMEMBER', holders_key(ckey), run_id) == 0 then
  local limit = tonumber(cjson.decode(ARGV[7])[ckey]) or 1
  redis.call('SET', limit_key(ckey), limit)
  if slots_taken(ckey, limit) >= limit then
    -- No slot: wait in the key's line; the message is done with (no worker thread waits).
    redis.call('HSET', KEYS[1], 'state', 'waiting', 'waits_for', 'slot')
    redis.call('RPUSH', slot_waiting_key(ckey), run_id)
    local text = string.format(
      "Waiting for a slot of concurrency key '%s' (at most %d at once, ALLOYSYNC_CONCURRENCY_LIMITS)", ckey, limit)
    append('waiting', {status = 'Queued', message = text}, {})
    return {'waiting', none, fields}
  end
  redis.call('SADD', holders_key(ckey), run_id)
end
-- The run's attempts are those of the step that needed most (a pipeline that never retried has 1).
local step_attempts = (tonumber(run.step_attempts) or 0) + 1
local claimed = {'owner', ARGV[1], 'state', 'running', 'worker', ARGV[4], 'step_started', now_iso,
  'step_attempts', step_attempts}
if step_attempts > (tonumber(run.attempts) or 0) then
  claimed[#claimed + 1] = 'attempts'
  claimed[#claimed + 1] = step_attempts
end
local first = owner ~= ARGV[1]
if first and step == 0 then
  claimed[#claimed + 1] = 'started'
  claimed[#claimed + 1] = now_iso
end
redis.call('HSET', KEYS[1], unpack(claimed))
redis.call('ZADD', KEYS[3], ARGV[5], run_id)
if not first then return {'redelivered', none, fields} end

-- The Running event: "Running task" or "Running step 2/3: task", with the run's progress.
local steps = cjson.decode(run.steps or '[]')
local text
if #steps == 1 then
  text = 'Running ' .. tostring(steps[1])
else
  text = string.format('Running step %d/%d: %s', step + 1, #steps, tostring(steps[step + 1]))
end
if (run.progress or '') ~= '' then text = text .. ' (' .. run.progress .. ')' end
local attrs = {}
if version == '' or (job_state == 'valid' and job_version == version) then
  attrs.status = 'Running'
  attrs.message = text
end  -- else a run of an old definition: its times only, never Status or Message
if step == 0 then attrs.last_run_started = now_iso end
local task = run.task or ''
if task == '' then task = table.concat(steps, ' | ') end
append('started', attrs, {task = task, step = step, worker = ARGV[4]})
return {'first', none, fields}
