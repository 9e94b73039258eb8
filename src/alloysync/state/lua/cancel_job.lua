-- cancel_job(
--   keys=[lease, outbox],
--   args=[lease_value, item_id, now_iso, reason, ttl]
-- )
-- needs: helpers
--
-- item_id  the job whose queued, waiting and running runs are cancelled (CancelRequested)
-- reason   the cancelled runs' Message
-- ttl      seconds a cancelled run's record is kept
--
-- Waiting and queued runs end as cancelled at once (none of their steps runs); running ones are
-- marked, and filed in runs:cancelling for their worker to interrupt (a redelivery of their
-- message after a worker died finds the mark and cancels instead of running).
-- Returns {-1} when the lease is lost, else {cancelled now, being interrupted, now_ms, ids of runs
-- of other jobs admitted to the concurrency slots this freed...}.
if not holds_lease(KEYS[1], ARGV[1]) then return {-1} end
local item, now, now_iso, reason = ARGV[2], now_ms(), ARGV[3], ARGV[4]
local cancelled, interrupting = 0, 0
local promoted = {}
local function cancel_waiting(list_key)
  for _, id in ipairs(redis.call('LRANGE', list_key, 0, -1)) do
    if redis.call('HGET', run_key(id), 'state') == 'waiting' then
      cancel_now(id, now, now_iso, reason, KEYS[2], promoted)
      redis.call('EXPIRE', run_key(id), tonumber(ARGV[5]))
      cancelled = cancelled + 1
    end
  end
  redis.call('DEL', list_key)
end
cancel_waiting(waiting_key(item))
cancel_waiting(backfill_key(item))
for _, id in ipairs(redis.call('SMEMBERS', active_key(item))) do
  local key = run_key(id)
  local state = redis.call('HGET', key, 'state')
  if state == 'running' then
    redis.call('HSET', key, 'cancel', reason)
    redis.call('SADD', RUNS_CANCELLING, id)
    interrupting = interrupting + 1
  elseif state and not ENDED[state] then
    -- Queued (first step or between steps) or waiting for a slot: it never runs (again).
    local ckey = redis.call('HGET', key, 'concurrency_key') or ''
    if state == 'waiting' and ckey ~= '' then redis.call('LREM', slot_waiting_key(ckey), 0, id) end
    cancel_now(id, now, now_iso, reason, KEYS[2], promoted)
    redis.call('EXPIRE', key, tonumber(ARGV[5]))
    cancelled = cancelled + 1
  end
end
local answer = {cancelled, interrupting, now}
for _, id in ipairs(promoted) do answer[#answer + 1] = id end
return answer
