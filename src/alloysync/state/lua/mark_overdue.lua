-- mark_overdue(
--   keys=[lease, job, outbox, notify],
--   args=[lease_value, item_id, last_succeeded, event, message, at]
-- )
-- needs: helpers
--
-- job             alloysync:job:{item}
-- outbox          the stream of run events
-- notify          the stream of notifications to send (alloysync:notify)
-- last_succeeded  the job's `last_succeeded` as the freshness check read it ('' = none yet)
-- event           Event.wire() of the Overdue event (status Overdue and its message)
-- message, at     the notification's message and time (Alloy's DateTime text)
--
-- Marks a job overdue (serve's freshness check, fenced): sets `overdue` to '1', appends the Overdue
-- event and, unless the job's NotifyOn is never (or off) or it has no Notify targets, a notification
-- of kind `overdue`. Nothing happens when the job is no longer valid, has no MaxAge, is overdue
-- already, or succeeded since the check read it (its `last_succeeded` changed): a success that
-- lands meanwhile always wins. The run scripts set `overdue` back to '0' on the next success.
-- Returns 1 when marked, 0 when nothing was to be done, -1 when the lease is lost.
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
local job = KEYS[2]
if redis.call('HGET', job, 'state') ~= 'valid' then return 0 end
if (redis.call('HGET', job, 'max_age') or '') == '' then return 0 end
if redis.call('HGET', job, 'overdue') == '1' then return 0 end
if (redis.call('HGET', job, 'last_succeeded') or '') ~= ARGV[3] then return 0 end
redis.call('HSET', job, 'overdue', '1')
append_event(KEYS[3], ARGV[4], nil, nil)
local policy = redis.call('HGET', job, 'notify_on') or ''
local targets = redis.call('HGET', job, 'notify') or ''
if policy ~= '' and policy ~= 'never' and targets ~= '' then
  redis.call('XADD', KEYS[4], '*', 'item', ARGV[2], 'run', '', 'kind', 'overdue', 'at', ARGV[6],
    'message', ARGV[5], 'failures', redis.call('HGET', job, 'consecutive_failures') or '0')
end
return 1
