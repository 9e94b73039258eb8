-- lease_renew(
--   keys=[lease],
--   args=[lease_value, ttl_ms]
-- )
--
-- Returns 1 when renewed, 0 when `lease_value` no longer holds the lease.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
