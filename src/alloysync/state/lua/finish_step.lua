-- finish_step(
--   keys=[run, outbox, job, runs_pending, runs_running, run_log(, acks, messages)],
--   args=[message_id, step, now, step_result, is_last, now_ms, ttl, event, reduced_attrs,
--         log_max_lines, storage_id, log_line...]
-- )
-- needs: helpers
--
-- step_result    the step's result (JSON)
-- is_last        '1' when this is the run's last step
-- now_ms         the run's score in runs_pending while its next step is being sent (or, after
--                the last step, the score of the runs admitted in its place)
-- ttl            seconds an ended run's record (and its log) is kept
-- event          Event.wire() of the Succeeded event (appended after the last step only)
-- reduced_attrs  the attributes that event may carry for a run of an old definition
-- log_max_lines  how many lines the run's log keeps (the newest; ALLOYSYNC_RUN_LOG_MAX_LINES)
-- log_line...    the step's log lines not appended yet (JSON, state/run_logs.py), zero or more
-- acks, messages the worker's acks set and the queue's message hash of the Dramatiq message that
--                delivered the step, and ARGV[11] its storage id: when given, a step that is over
--                acknowledges its message here (as Dramatiq's ack does), in the same step as its
--                result, so the worker makes no round trip of its own for it (AlloysyncBroker.do_ack)
--
-- The step's log lines are appended first, whatever the outcome: they tell what the step did even
-- when another delivery owns it now (a reply lost and the script sent again appends them twice).
--
-- Returns {-1} when the caller no longer owns the step; {0} after an intermediate step (the run is
-- pending for its next step); {-2, now_ms, admitted ids...} when the run was cancelled meanwhile
-- (a pipeline stops at the step that was running); else {the job's new run count, now_ms,
-- ids of the runs admitted in its place...}.
local LOG_FIRST = 12

-- The step is over (its result recorded, or its run cancelled meanwhile): done with its message.
local function ack_message()
  if #KEYS >= 8 and ARGV[11] ~= '' and redis.call('SREM', KEYS[7], ARGV[11]) > 0 then
    redis.call('HDEL', KEYS[8], ARGV[11])
  end
end

if #ARGV >= LOG_FIRST then
  local length = 0
  for first = LOG_FIRST, #ARGV, 1000 do  -- in chunks: unpack has a limit
    length = redis.call('RPUSH', KEYS[6], unpack(ARGV, first, math.min(first + 999, #ARGV)))
  end
  local max_lines = tonumber(ARGV[10])
  if length > max_lines then redis.call('LTRIM', KEYS[6], -max_lines, -1) end
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[7]))
end
local run = run_fields(KEYS[1])
if run.owner ~= ARGV[1] then return {-1} end
local step = tonumber(ARGV[2])
if tonumber(run.step) ~= step then return {-1} end
local run_id = run.run_id
if ARGV[5] ~= '1' then
  redis.call('ZREM', KEYS[5], run_id)
  redis.call('HSET', KEYS[1], 'result:' .. ARGV[2], ARGV[4])
  if (run.cancel or '') ~= '' then
    local now = tonumber(ARGV[6])
    local promoted = {-2, now}
    cancel_now(run_id, now, ARGV[3], run.cancel, KEYS[2], promoted)
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
    ack_message()
    return promoted
  end
  redis.call('HSET', KEYS[1], 'step', step + 1, 'owner', '', 'state', 'queued', 'step_attempts', 0)
  redis.call('ZADD', KEYS[4], ARGV[6], run_id)
  ack_message()
  return {0}
end
-- The last step: the run succeeded (`release`, in end_run, takes it out of runs_running).
redis.call('HSET', KEYS[1], 'result:' .. ARGV[2], ARGV[4], 'state', 'succeeded', 'finished', ARGV[3],
  'owner', '', 'result', ARGV[4])
ack_message()
return end_run(KEYS[1], KEYS[3], KEYS[2], ARGV[8], ARGV[9], tonumber(ARGV[7]), true, ARGV[3], run,
  tonumber(ARGV[6]))
