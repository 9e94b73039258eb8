-- forget_pending(
--   keys=[runs_pending],
--   args=[run_id, score]
-- )
--
-- score  the score the caller read (or wrote): the entry goes only if nobody re-added it since
--
-- Returns 1 when removed, else 0.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
