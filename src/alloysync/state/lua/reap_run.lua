-- reap_run(
--   keys=[run, runs_running, runs_pending],
--   args=[run_id, deadline, pending_score]
-- )
--
-- deadline       the run's deadline as read from runs_running (the entry goes only if unchanged)
-- pending_score  the score to file the run under in runs_pending (0: re-send at the next recovery)
--
-- A run whose step is past its deadline lost its worker and its message: put it back in line.
-- Returns 1 when the run was put back, else 0.
if redis.call('ZSCORE', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'owner', '', 'state', 'queued', 'error', 'its worker was lost; sent again')
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
