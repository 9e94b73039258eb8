-- set_cursor(
--   keys=[lease, cursor],
--   args=[lease_value, value]
-- )
-- needs: helpers
--
-- cursor  alloysync:sync:cursor: when the last incremental pass began, on Alloy's clock
--
-- Returns 1, or -1 when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
