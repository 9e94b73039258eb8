-- begin_request(
--   keys=[lease, job],
--   args=[lease_value, read_ms, flag]
-- )
-- needs: helpers
--
-- read_ms  Redis time just before the view showing the flag set was requested
-- flag     which request flag: 'request' (RunRequested) or 'cancel' (CancelRequested); its
--          bookkeeping lives in the job hash fields {flag}_pending, _seq, _after and _reset
--
-- Returns {request number, 1 if it is new}; {0, 0} for a view that may predate our last reset of
-- the flag; {-1, 0} when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return {-1, 0} end
local flag = ARGV[3]
if redis.call('HGET', KEYS[2], flag .. '_pending') == '1' then
  return {tonumber(redis.call('HGET', KEYS[2], flag .. '_seq')), 0}
end
local reset_ms = tonumber(redis.call('HGET', KEYS[2], flag .. '_after') or '0') or 0
if tonumber(ARGV[2]) <= reset_ms then return {0, 0} end
redis.call('HSET', KEYS[2], flag .. '_pending', '1')
return {redis.call('HINCRBY', KEYS[2], flag .. '_seq', 1), 1}
