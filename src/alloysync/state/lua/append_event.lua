-- append_event(
--   keys=[lease, outbox],
--   args=[lease_value, event]
-- )
-- needs: helpers
--
-- outbox  the stream of run events
-- event   Event.wire()
--
-- Appends an event as the poller. Returns 1, or -1 when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
append_event(KEYS[2], ARGV[2], nil, nil)
return 1
