-- create_run(
--   keys=[outbox, lease, run_1, job_runs_1, queue_1, messages_1, ..., run_n, ...],
--   args=[lease_value, now_ms, history_len, now_iso, ttl,
--         then per run: run_id, record_json, queued_event, overlap, gate, waiting_event,
--         skipped_event, dropped_event, replaced_reason, message_id, message]
-- )
-- needs: helpers
--
-- lease_value    the poller's lease, or '' when the caller is not the poller
-- now_ms         the caller's clock in ms: the runs:pending score of runs that Overlap replace admits
-- now_iso        the time, in Alloy's DateTime text, for runs that Overlap replace cancels
-- ttl            seconds a dropped run's record is kept
-- run_i          alloysync:run:{run_id}, created only if it does not exist (the idempotency key)
-- job_runs_i     the job's recent run ids, newest first, kept to `history_len`
-- queue_i        the Dramatiq queue of the run's first step (a list of message ids)
-- messages_i     that queue's message bodies (a hash: message id -> encoded message)
-- record_json    a JSON object: the new run record's fields (its `item` names the job)
-- queued_event   Event.wire() of the Queued event (the run is admitted at once)
-- overlap        the run's Overlap policy: '' or allow (no check), skip, queue-one, replace
-- gate           'backfill' for a backfill run (waits its turn, never skipped), else ''
-- waiting_event  Event.wire() appended when the run has to wait for the job's running run
-- skipped_event  Event.wire() appended when Overlap skip drops the run
-- dropped_event  Event.wire() appended when Overlap queue-one drops the run (one waits already)
-- replaced_reason the Message of a run cancelled by Overlap replace
-- message_id     the storage id of the first step's Dramatiq message (enqueue.first_message_id)
-- message        that message, encoded (what Dramatiq's dispatch.lua would file under the id)
-- (the three conditional events may be '' for a run whose policy can never append them)
--
-- Creates a batch of runs in one step (the lease is checked once), in order: a later run of the
-- same job sees the earlier ones. Enforces Overlap at creation with the job's index of active runs:
-- a run is admitted (queued, its first message filed on its queue), made to wait, or dropped
-- (recorded as skipped, so its id stays used). The index is pruned of ended or lost runs only where
-- a policy reads it (a job that allows overlap only adds to it; its runs leave it as they end).
-- An admitted run's message is filed the way Dramatiq's Redis broker enqueues (HSET the body into
-- the queue's messages hash, RPUSH the id onto the queue), in the same script as the record: a run
-- is never created without its message, nor its message sent twice by its creator.
-- Returns, per run in order, {code, ids admitted in the place of cancelled runs...}: code 1
-- admitted, 2 waiting, 3 skipped or dropped by Overlap, 0 the run existed already; or -1 when the
-- lease is lost (nothing created).
if not holds_lease(KEYS[2], ARGV[1]) then return -1 end
local now, history_len, now_iso, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local PER_RUN = 11

local function create(this_run, job_runs, queue, messages, at)
  local id = ARGV[at]
  if redis.call('EXISTS', this_run) == 1 then return {0} end
  local record = cjson.decode(ARGV[at + 1])
  local hash = {}
  for name, value in pairs(record) do
    hash[#hash + 1] = name
    hash[#hash + 1] = value
  end
  redis.call('HSET', this_run, unpack(hash))
  if redis.call('LPUSH', job_runs, id) > history_len then redis.call('LTRIM', job_runs, 0, history_len - 1) end

  local item = record['item']
  local queued_event, overlap, gate = ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  local waiting_event, skipped_event, dropped_event = ARGV[at + 5], ARGV[at + 6], ARGV[at + 7]
  local replaced_reason = ARGV[at + 8]
  local promoted = {}
  local active = 0
  if gate == 'backfill' or (overlap ~= '' and overlap ~= 'allow') then active = prune(active_key(item)) end

  local function wait_in(list_key, event)
    redis.call('HSET', this_run, 'state', 'waiting', 'waits_for', 'job')
    redis.call('RPUSH', list_key, id)
    note_waiter(item)
    append_event(KEYS[1], event, nil, nil)
  end

  local function drop(event, reason)
    redis.call('HSET', this_run, 'state', 'skipped', 'finished', now_iso, 'error', reason)
    redis.call('EXPIRE', this_run, ttl)
    append_event(KEYS[1], event, nil, nil)
  end

  if gate == 'backfill' then
    if active > 0 or redis.call('LLEN', waiting_key(item)) > 0 or redis.call('LLEN', backfill_key(item)) > 0 then
      wait_in(backfill_key(item), waiting_event)
      return {2}
    end
  elseif active > 0 and overlap == 'skip' then
    drop(skipped_event, 'Overlap skip: the previous run was still running')
    return {3}
  elseif active > 0 and overlap == 'queue-one' then
    if redis.call('LLEN', waiting_key(item)) > 0 then
      drop(dropped_event, 'Overlap queue-one: a run was already waiting')
      return {3}
    end
    wait_in(waiting_key(item), waiting_event)
    return {2}
  elseif active > 0 and overlap == 'replace' then
    -- Wait first, so that cancelling the active runs hands the job to this run.
    redis.call('HSET', this_run, 'state', 'waiting', 'waits_for', 'job')
    redis.call('LPUSH', waiting_key(item), id)
    note_waiter(item)
    append_event(KEYS[1], waiting_event, nil, nil)
    for _, other in ipairs(redis.call('SMEMBERS', active_key(item))) do
      local other_key = run_key(other)
      if redis.call('HGET', other_key, 'state') == 'running' then
        redis.call('HSET', other_key, 'cancel', replaced_reason)
        redis.call('SADD', RUNS_CANCELLING, other)
      else
        cancel_now(other, now, now_iso, replaced_reason, KEYS[1], promoted)
      end
    end
    table.insert(promoted, 1, 2)
    return promoted
  end
  redis.call('SADD', active_key(item), id)
  local message_id = ARGV[at + 9]
  redis.call('HSET', messages, message_id, ARGV[at + 10])
  redis.call('RPUSH', queue, message_id)
  append_event(KEYS[1], queued_event, nil, nil)
  return {1}
end

local replies = {}
local count = (#ARGV - 5) / PER_RUN
for i = 1, count do
  local first = 4 * i - 1
  replies[i] = create(KEYS[first], KEYS[first + 1], KEYS[first + 2], KEYS[first + 3], 6 + (i - 1) * PER_RUN)
end
return replies
