-- set_schedule(
--   keys=[lease, schedules, schedules_changed],
--   args=[lease_value, item_id, entry_json]
-- )
-- needs: helpers
--
-- schedules          the hash item -> schedule entry JSON
-- schedules_changed  the pub/sub channel the scheduler listens on
-- entry_json         the entry to store, or '' to remove the job's entry
--
-- Returns 1 when something changed (and the scheduler was told), 0 when there was nothing to
-- remove, -1 when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
if ARGV[3] == '' then
  if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 0 end
else
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
