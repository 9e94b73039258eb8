-- forget_job(
--   keys=[lease, job, jobs, schedules, schedules_changed],
--   args=[lease_value, item_id]
-- )
-- needs: helpers
--
-- The record is gone from Alloy. Its counters stay (version, request and run numbers keep run ids
-- unique if it comes back); `acted` is cleared so that a return is acted upon again.
-- Returns 1, or -1 when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
redis.call('HSET', KEYS[2], 'state', 'gone', 'acted', '0')
redis.call('SREM', KEYS[3], ARGV[2])
if redis.call('HDEL', KEYS[4], ARGV[2]) == 1 then redis.call('PUBLISH', KEYS[5], ARGV[2]) end
return 1
