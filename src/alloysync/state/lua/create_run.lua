-- create_run(
--   keys=[run, runs_pending, outbox, job_runs, lease],
--   args=[run_id, now_ms, history_len, record_json, queued_event, lease_value, overlap, gate,
--         waiting_event, skipped_event, dropped_event, now_iso, replaced_reason, ttl]
-- )
-- needs: helpers
--
-- run            alloysync:run:{run_id}, created only if it does not exist (the idempotency key)
-- runs_pending   zset of runs whose message may not be on a queue yet, scored by `now_ms`
-- job_runs       the job's recent run ids, newest first, kept to `history_len`
-- record_json    a JSON object: the new run record's fields (its `item` names the job)
-- queued_event   Event.wire() of the Queued event (the run is admitted at once)
-- lease_value    the poller's lease, or '' when the caller is not the poller
-- overlap        the run's Overlap policy: '' or allow (no check), skip, queue-one, replace
-- gate           'backfill' for a backfill run (waits its turn, never skipped), else ''
-- waiting_event  Event.wire() appended when the run has to wait for the job's running run
-- skipped_event  Event.wire() appended when Overlap skip drops the run
-- dropped_event  Event.wire() appended when Overlap queue-one drops the run (one waits already)
-- now_iso        the time, in Alloy's DateTime text, for runs that Overlap replace cancels
-- replaced_reason the Message of a run cancelled by Overlap replace
-- ttl            seconds a dropped run's record is kept
--
-- Enforces Overlap at creation with the job's index of active runs: a run is admitted (queued,
-- pending for its message), made to wait, or dropped (recorded as skipped, so its id stays used).
-- Returns {code, ids admitted in the place of cancelled runs...}: code 1 admitted, 2 waiting,
-- 3 skipped or dropped by Overlap, 0 the run existed already, -1 the lease is lost.
if not holds_lease(KEYS[5], ARGV[6]) then return {-1} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local record = cjson.decode(ARGV[4])
local hash = {}
for name, value in pairs(record) do
  hash[#hash + 1] = name
  hash[#hash + 1] = value
end
redis.call('HSET', KEYS[1], unpack(hash))
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)

local item, id, now = record['item'], ARGV[1], tonumber(ARGV[2])
local overlap, gate = ARGV[7], ARGV[8]
local active = prune(active_key(item))
local promoted = {}

local function wait_in(list_key, event)
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'waits_for', 'job')
  redis.call('RPUSH', list_key, id)
  append_event(KEYS[3], event, nil, nil)
end

local function drop(event, reason)
  redis.call('HSET', KEYS[1], 'state', 'skipped', 'finished', ARGV[12], 'error', reason)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[14]))
  append_event(KEYS[3], event, nil, nil)
end

if gate == 'backfill' then
  if active > 0 or redis.call('LLEN', waiting_key(item)) > 0 or redis.call('LLEN', backfill_key(item)) > 0 then
    wait_in(backfill_key(item), ARGV[9])
    return {2}
  end
elseif active > 0 and overlap == 'skip' then
  drop(ARGV[10], 'Overlap skip: the previous run was still running')
  return {3}
elseif active > 0 and overlap == 'queue-one' then
  if redis.call('LLEN', waiting_key(item)) > 0 then
    drop(ARGV[11], 'Overlap queue-one: a run was already waiting')
    return {3}
  end
  wait_in(waiting_key(item), ARGV[9])
  return {2}
elseif active > 0 and overlap == 'replace' then
  -- Wait first, so that cancelling the active runs hands the job to this run.
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'waits_for', 'job')
  redis.call('LPUSH', waiting_key(item), id)
  append_event(KEYS[3], ARGV[9], nil, nil)
  for _, other in ipairs(redis.call('SMEMBERS', active_key(item))) do
    local other_key = run_key(other)
    if redis.call('HGET', other_key, 'state') == 'running' then
      redis.call('HSET', other_key, 'cancel', ARGV[13])
      redis.call('SADD', RUNS_CANCELLING, other)
    else
      cancel_now(other, now, ARGV[12], ARGV[13], KEYS[3], promoted)
    end
  end
  table.insert(promoted, 1, 2)
  return promoted
end
redis.call('SADD', active_key(item), id)
redis.call('ZADD', KEYS[2], now, id)
append_event(KEYS[3], ARGV[5], nil, nil)
return {1}
