-- helpers.lua: functions shared by alloysync's scripts. `scripts.py` reads this file once and
-- prepends it to every script whose header says `-- needs: helpers`.
--
-- An event is passed to a script as one ARGV entry: `Event.wire()`, a JSON array of the outbox
-- entry's fields as [name, value, ...] (item, kind, run, at, attrs, details).
-- Phases are the values of `records.RunPhase` (queued, running, waiting, succeeded, failed,
-- skipped, cancelled) and `records.JobPhase` (valid, disabled, invalid, gone).
--
-- Run control (Overlap, ConcurrencyKey, backfill, cancel) keeps, besides the run hashes:
--   job:{item}:active     set: the job's admitted runs (queued, running, waiting for a slot)
--   job:{item}:waiting    list: runs waiting for the job's active runs to end (Overlap)
--   job:{item}:backfill   list: backfill runs waiting their turn, oldest first
--   ckey:{key}:holders    set: runs holding one of the key's slots; ckey:{key}:limit its size
--   ckey:{key}:waiting    list: runs waiting for a slot, in order
--   runs:cancelling       set: running runs whose worker must interrupt them
-- These keys are derived from the run hashes' `item` and `concurrency_key` fields, so the scripts
-- that use them touch keys they do not declare: alloysync needs a single Redis (not Cluster).

-- Whether `lease_value` still holds the poller lease ('' = the caller is not the poller: no check).
local function holds_lease(lease_key, lease_value)
  return lease_value == '' or redis.call('GET', lease_key) == lease_value
end

-- Redis's clock in milliseconds: the one clock every process shares.
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- Append `event` to the outbox stream; `attrs` (when not nil) replaces its attributes, and the
-- name/value pairs of `extra` (when not nil) follow its fields.
local function append_event(outbox_key, event, attrs, extra)
  local fields = cjson.decode(event)
  if attrs then
    for i = 1, #fields, 2 do
      if fields[i] == 'attrs' then fields[i + 1] = attrs end
    end
  end
  if extra then
    for _, value in ipairs(extra) do fields[#fields + 1] = value end
  end
  return redis.call('XADD', outbox_key, '*', unpack(fields))
end

-- Whether the run still belongs to its job's current definition (a run without a version, such
-- as one created by hand in a test, always does).
local function definition_is_current(run_key, job_key)
  local version = redis.call('HGET', run_key, 'version') or ''
  if version == '' then return true end
  return redis.call('HGET', job_key, 'state') == 'valid' and redis.call('HGET', job_key, 'version') == version
end

local PREFIX = 'alloysync:'
local RUNS_PENDING = PREFIX .. 'runs:pending'
local RUNS_RUNNING = PREFIX .. 'runs:running'
local RUNS_CANCELLING = PREFIX .. 'runs:cancelling'
local NOTIFY_STREAM = PREFIX .. 'notify'
local ENDED = {succeeded = true, failed = true, skipped = true, cancelled = true}

-- The fields of a run hash the transition scripts decide on, read with one HMGET into a table
-- (a missing field is `false`).
local RUN_FIELDS = {'run_id', 'state', 'step', 'owner', 'cancel', 'version', 'item', 'concurrency_key'}
local function run_fields(run_key)
  local values = redis.call('HMGET', run_key, unpack(RUN_FIELDS))
  local run = {}
  for i, name in ipairs(RUN_FIELDS) do run[name] = values[i] end
  return run
end

-- The end of a run: count it, keep the job's failure streak and last success, append its event
-- (with the count and the streak; with `reduced` attributes for a run of an old definition), file
-- a notification when the job's NotifyOn policy asks for one (`notify_decision`), let the record
-- expire after `ttl` seconds, and free its job and slot. `succeeded` says how the run ended;
-- `now_iso` is when (Alloy's DateTime text); `run` is the run's `run_fields`; `now` (ms, optional:
-- Redis's clock when nil) scores the runs admitted in its place in runs:pending. The job's fields are
-- read with one HMGET and written with one HSET (the script is atomic, so this is an increment).
-- Returns {count, now_ms, ids of the runs admitted in its place...} (`release`, defined below).
local release
local notify_decision
local function end_run(run_key, job_key, outbox_key, event, reduced, ttl, succeeded, now_iso, run, now)
  local job = redis.call('HMGET', job_key, 'run_count', 'consecutive_failures', 'state', 'version',
    'notify_on', 'notify', 'waiters')
  local count = (tonumber(job[1]) or 0) + 1
  local before = tonumber(job[2]) or 0
  local streak = 0
  local extra = {'run_count', tostring(count)}
  if succeeded then
    redis.call('HSET', job_key, 'run_count', count, 'consecutive_failures', 0, 'last_succeeded', now_iso,
      'overdue', '0')
    extra[#extra + 1] = 'last_succeeded'
    extra[#extra + 1] = now_iso
  else
    streak = before + 1
    redis.call('HSET', job_key, 'run_count', count, 'consecutive_failures', streak)
  end
  extra[#extra + 1] = 'consecutive_failures'
  extra[#extra + 1] = tostring(streak)
  local version = run.version or ''
  local attrs = nil
  if version ~= '' and not (job[3] == 'valid' and job[4] == version) then attrs = reduced end
  append_event(outbox_key, event, attrs, extra)
  local run_id = run.run_id
  local kind = notify_decision(job[5] or '', job[6] or '', succeeded, before, streak)
  if kind then
    local fields = cjson.decode(event)
    local message = ''
    for i = 1, #fields, 2 do
      if fields[i] == 'attrs' then message = cjson.decode(fields[i + 1])['message'] or '' end
    end
    redis.call('XADD', NOTIFY_STREAM, '*', 'item', run.item or '', 'run', run_id,
      'kind', kind, 'at', now_iso, 'message', message, 'failures', tostring(streak))
  end
  redis.call('EXPIRE', run_key, ttl)
  now = now or now_ms()
  local promoted = {count, now}
  release(run_id, now, promoted, run, job[7])
  return promoted
end

local function run_key(id) return PREFIX .. 'run:' .. id end
local function active_key(item) return PREFIX .. 'job:' .. item .. ':active' end
local function waiting_key(item) return PREFIX .. 'job:' .. item .. ':waiting' end
local function backfill_key(item) return PREFIX .. 'job:' .. item .. ':backfill' end
local function holders_key(ckey) return PREFIX .. 'ckey:' .. ckey .. ':holders' end
local function slot_waiting_key(ckey) return PREFIX .. 'ckey:' .. ckey .. ':waiting' end
local function limit_key(ckey) return PREFIX .. 'ckey:' .. ckey .. ':limit' end

-- Whether run `id` exists and has not ended.
local function is_live(id)
  local state = redis.call('HGET', run_key(id), 'state')
  return state and not ENDED[state]
end

-- Drop the members of `set_key` whose run ended or expired (a lost run cannot block a job or a
-- key forever); returns how many are left.
local function prune(set_key)
  local left = 0
  for _, id in ipairs(redis.call('SMEMBERS', set_key)) do
    if is_live(id) then left = left + 1 else redis.call('SREM', set_key, id) end
  end
  return left
end

-- How many of `ckey`'s `limit` slots are taken; the holders are checked for ended or lost runs
-- only when the key looks full (so a key with a large limit costs no scan).
local function slots_taken(ckey, limit)
  local taken = redis.call('SCARD', holders_key(ckey))
  if taken < limit then return taken end
  return prune(holders_key(ckey))
end

-- A waiting run's turn: queued, and in runs:pending so that its first step is sent (by the caller
-- at once, or by serve's recovery if the caller dies).
local function admit(id, now, promoted)
  redis.call('HSET', run_key(id), 'state', 'queued', 'waits_for', '')
  redis.call('ZADD', RUNS_PENDING, now, id)
  promoted[#promoted + 1] = id
end

-- Pop the first run of `list_key` that is still waiting (others were cancelled meanwhile).
local function pop_waiting(list_key)
  while true do
    local id = redis.call('LPOP', list_key)
    if not id then return nil end
    if redis.call('HGET', run_key(id), 'state') == 'waiting' then return id end
  end
end

-- When none of the job's runs is active any more, admit the next waiting one (Overlap first,
-- then backfill runs, oldest first). `waiters` is the job hash's `waiters` field when the caller
-- read it (false when absent), nil when it did not: '1' once a run was made to wait
-- (`note_waiter`), '0' once a look found nobody waiting. A job known to have nobody waiting costs
-- nothing; else one EXISTS (its active set is then pruned by the next script that looks at it),
-- and a caller that read the field has '0' remembered for the next end. A store from before the
-- field has no '0' anywhere, so its waiting runs are looked for as before.
local function promote_job(item, now, promoted, waiters)
  if waiters == '0' then return end
  if redis.call('EXISTS', waiting_key(item), backfill_key(item)) == 0 then
    if waiters ~= nil then redis.call('HSET', PREFIX .. 'job:' .. item, 'waiters', '0') end
    return
  end
  if prune(active_key(item)) > 0 then return end
  local id = pop_waiting(waiting_key(item)) or pop_waiting(backfill_key(item))
  if id then
    redis.call('SADD', active_key(item), id)
    admit(id, now, promoted)
  end
end

-- A run of `item` was put in its job's waiting or backfill list: the job's ends look again.
local function note_waiter(item)
  redis.call('HSET', PREFIX .. 'job:' .. item, 'waiters', '1')
end

-- Give free slots of concurrency key `ckey` to the runs waiting for one, in order.
local function promote_slots(ckey, now, promoted)
  local limit = tonumber(redis.call('GET', limit_key(ckey)) or '1') or 1
  while slots_taken(ckey, limit) < limit do
    local id = pop_waiting(slot_waiting_key(ckey))
    if not id then return end
    redis.call('SADD', holders_key(ckey), id)
    admit(id, now, promoted)
  end
end

-- A run ended (or will never run): free its job and its concurrency slot for the next in line.
-- Appends the ids of the runs admitted instead to `promoted`. `run`, when given, is the run's
-- `run_fields` (read already); else its fields are read here. `waiters`: see `promote_job`.
release = function(id, now, promoted, run, waiters)
  run = run or run_fields(run_key(id))
  local item = run.item or ''
  local ckey = run.concurrency_key or ''
  -- Only a run marked `cancel` is ever filed in runs:cancelling (cancel_job.lua, create_run.lua).
  if (run.cancel or '') ~= '' then redis.call('SREM', RUNS_CANCELLING, id) end
  redis.call('ZREM', RUNS_RUNNING, id)
  if ckey ~= '' then
    redis.call('SREM', holders_key(ckey), id)
    promote_slots(ckey, now, promoted)
  end
  if item ~= '' then
    redis.call('SREM', active_key(item), id)
    promote_job(item, now, promoted, waiters)
  end
end

-- End run `id` as cancelled (it never ran, or its worker stopped it): its event says `reason`.
local function cancel_now(id, now, now_iso, reason, outbox_key, promoted)
  local run = run_key(id)
  local item = redis.call('HGET', run, 'item') or ''
  redis.call('HSET', run, 'state', 'cancelled', 'finished', now_iso, 'owner', '', 'error', reason)
  local event = cjson.encode({
    'item', item, 'kind', 'cancelled', 'run', id, 'at', now_iso,
    'attrs', cjson.encode({status = 'Cancelled', message = reason}),
    'details', cjson.encode({outcome = 'cancelled', task = redis.call('HGET', run, 'task') or ''}),
  })
  append_event(outbox_key, event, nil, nil)
  release(id, now, promoted)
end

-- Whether a run's end is worth a notification, by the job's NotifyOn policy (`policy`, its
-- `notify_on` field, and `targets`, its `notify` field, which the poller keeps): 'failed',
-- 'recovered', 'succeeded', or nil.
--   failure (default)  the first failure of a streak, and the recovery after one
--   every-failure      every failure, and the recovery
--   always             every end
--   never, or no Notify targets, or the feature off: nothing
notify_decision = function(policy, targets, succeeded, failures_before, streak)
  if policy == '' or policy == 'never' or targets == '' then return nil end
  if succeeded then
    if failures_before > 0 then return 'recovered' end
    if policy == 'always' then return 'succeeded' end
    return nil
  end
  if policy == 'failure' and streak > 1 then return nil end
  return 'failed'
end
