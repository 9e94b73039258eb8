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

-- The end of a run: count it, keep the job's failure streak and last success, append its event
-- (with the count and the streak; with `reduced` attributes for a run of an old definition), file
-- a notification when the job's NotifyOn policy asks for one (`notify_decision`), let the record
-- expire after `ttl` seconds, and free its job and slot. `succeeded` says how the run ended;
-- `now_iso` is when (Alloy's DateTime text).
-- Returns {count, now_ms, ids of the runs admitted in its place...} (`release`, defined below).
local release
local notify_decision
local function end_run(run_key, job_key, outbox_key, event, reduced, ttl, succeeded, now_iso)
  local count = redis.call('HINCRBY', job_key, 'run_count', 1)
  local before = tonumber(redis.call('HGET', job_key, 'consecutive_failures') or '0') or 0
  local streak = 0
  local extra = {'run_count', tostring(count)}
  if succeeded then
    redis.call('HSET', job_key, 'consecutive_failures', 0, 'last_succeeded', now_iso, 'overdue', '0')
    extra[#extra + 1] = 'last_succeeded'
    extra[#extra + 1] = now_iso
  else
    streak = redis.call('HINCRBY', job_key, 'consecutive_failures', 1)
  end
  extra[#extra + 1] = 'consecutive_failures'
  extra[#extra + 1] = tostring(streak)
  local attrs = nil
  if not definition_is_current(run_key, job_key) then attrs = reduced end
  append_event(outbox_key, event, attrs, extra)
  local run_id = redis.call('HGET', run_key, 'run_id')
  local kind = notify_decision(job_key, succeeded, before, streak)
  if kind then
    local fields = cjson.decode(event)
    local message = ''
    for i = 1, #fields, 2 do
      if fields[i] == 'attrs' then message = cjson.decode(fields[i + 1])['message'] or '' end
    end
    redis.call('XADD', NOTIFY_STREAM, '*', 'item', redis.call('HGET', run_key, 'item') or '', 'run', run_id,
      'kind', kind, 'at', now_iso, 'message', message, 'failures', tostring(streak))
  end
  redis.call('EXPIRE', run_key, ttl)
  local now = now_ms()
  local promoted = {count, now}
  release(run_id, now, promoted)
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
  for _, id in ipairs(redis.call('SMEMBERS', set_key)) do
    if not is_live(id) then redis.call('SREM', set_key, id) end
  end
  return redis.call('SCARD', set_key)
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
-- then backfill runs, oldest first).
local function promote_job(item, now, promoted)
  if prune(active_key(item)) > 0 then return end
  local id = pop_waiting(waiting_key(item)) or pop_waiting(backfill_key(item))
  if id then
    redis.call('SADD', active_key(item), id)
    admit(id, now, promoted)
  end
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
-- Appends the ids of the runs admitted instead to `promoted`.
release = function(id, now, promoted)
  local run = run_key(id)
  local item = redis.call('HGET', run, 'item') or ''
  local ckey = redis.call('HGET', run, 'concurrency_key') or ''
  redis.call('SREM', RUNS_CANCELLING, id)
  redis.call('ZREM', RUNS_RUNNING, id)
  if ckey ~= '' then
    redis.call('SREM', holders_key(ckey), id)
    promote_slots(ckey, now, promoted)
  end
  if item ~= '' then
    redis.call('SREM', active_key(item), id)
    promote_job(item, now, promoted)
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

-- Whether a run's end is worth a notification, by the job's NotifyOn policy (its `notify_on` and
-- `notify` fields, which the poller keeps): 'failed', 'recovered', 'succeeded', or nil.
--   failure (default)  the first failure of a streak, and the recovery after one
--   every-failure      every failure, and the recovery
--   always             every end
--   never, or no Notify targets, or the feature off: nothing
notify_decision = function(job_key, succeeded, failures_before, streak)
  local policy = redis.call('HGET', job_key, 'notify_on') or ''
  if policy == '' or policy == 'never' or (redis.call('HGET', job_key, 'notify') or '') == '' then return nil end
  if succeeded then
    if failures_before > 0 then return 'recovered' end
    if policy == 'always' then return 'succeeded' end
    return nil
  end
  if policy == 'failure' and streak > 1 then return nil end
  return 'failed'
end
