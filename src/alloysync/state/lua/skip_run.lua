-- skip_run(
--   keys=[run, outbox, job],
--   args=[now, reason, ttl, event]
-- )
-- needs: helpers
--
-- reason  why the run is skipped (kept on the record as its error)
-- ttl     seconds the skipped run's record is kept
-- event   Event.wire() of the Skipped event (with no attributes for a run of an old definition)
--
-- Skips a queued run nobody claimed. Returns {1, now_ms, ids of the runs admitted in its place...}
-- when skipped, else {0}.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' or (redis.call('HGET', KEYS[1], 'owner') or '') ~= '' then return {0} end
redis.call('HSET', KEYS[1], 'state', 'skipped', 'finished', ARGV[1], 'error', ARGV[2])
local attrs = nil
if not definition_is_current(KEYS[1], KEYS[3]) then attrs = '{}' end
append_event(KEYS[2], ARGV[4], attrs, nil)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
local now = now_ms()
local promoted = {1, now}
release(redis.call('HGET', KEYS[1], 'run_id'), now, promoted)
return promoted
