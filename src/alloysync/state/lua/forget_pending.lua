-- forget_pending(
--   keys=[runs_pending],
--   args=[run_id_1, score_1, run_id_2, score_2, ...]
-- )
--
-- score_i  the score the caller read (or wrote) for run_id_i: the entry goes only if nobody
--          re-added it since (a run re-filed for its next step stays)
--
-- Returns how many entries were removed.
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
