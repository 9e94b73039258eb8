-- append_request_reset(
--   keys=[lease, job, outbox],
--   args=[lease_value, request, event, flag]
-- )
-- needs: helpers
--
-- request  the request number whose reset `event` carries
-- flag     'request' (RunRequested) or 'cancel' (CancelRequested)
--
-- Appends the reset once per request. Returns 1, 0 when it was appended before, -1 when the
-- lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
if redis.call('HGET', KEYS[2], ARGV[4] .. '_reset') == ARGV[2] then return 0 end
append_event(KEYS[3], ARGV[3], nil, nil)
redis.call('HSET', KEYS[2], ARGV[4] .. '_reset', ARGV[2])
return 1
