-- lease_release(
--   keys=[lease],
--   args=[lease_value]
-- )
--
-- Returns 1 when released, 0 when `lease_value` did not hold the lease.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
