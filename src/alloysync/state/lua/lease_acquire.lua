-- lease_acquire(
--   keys=[lease, fence],
--   args=[replica, ttl_ms]
-- )
--
-- lease   alloysync:lease:poller, `{replica}:{fence}` of the holder
-- fence   the counter incremented on every acquisition
--
-- Returns the new lease value, or false when someone holds the lease.
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local value = ARGV[1] .. ':' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
