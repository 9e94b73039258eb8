-- helpers.lua: functions shared by alloysync's scripts. `scripts.py` reads this file once and
-- prepends it to every script whose header says `-- needs: helpers`.
--
-- An event is passed to a script as one ARGV entry: `Event.wire()`, a JSON array of the outbox
-- entry's fields as [name, value, ...] (item, kind, run, at, attrs, details).
-- Phases are the values of `records.RunPhase` (queued, running, succeeded, failed, skipped) and
-- `records.JobPhase` (valid, disabled, invalid, gone).

-- Whether `lease_value` still holds the poller lease ('' = the caller is not the poller: no check).
local function holds_lease(lease_key, lease_value)
  return lease_value == '' or redis.call('GET', lease_key) == lease_value
end

-- Redis's clock in milliseconds: the one clock every process shares.
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- Append `event` to the outbox stream; `attrs` (when not nil) replaces its attributes, and the
-- name/value pairs of `extra` (when not nil) follow its fields.
local function append_event(outbox_key, event, attrs, extra)
  local fields = cjson.decode(event)
  if attrs then
    for i = 1, #fields, 2 do
      if fields[i] == 'attrs' then fields[i + 1] = attrs end
    end
  end
  if extra then
    for _, value in ipairs(extra) do fields[#fields + 1] = value end
  end
  return redis.call('XADD', outbox_key, '*', unpack(fields))
end

-- Whether the run still belongs to its job's current definition (a run without a version, such
-- as one created by hand in a test, always does).
local function definition_is_current(run_key, job_key)
  local version = redis.call('HGET', run_key, 'version') or ''
  if version == '' then return true end
  return redis.call('HGET', job_key, 'state') == 'valid' and redis.call('HGET', job_key, 'version') == version
end

-- The end of a run: count it, append its event (with the count; with `reduced` attributes for a
-- run of an old definition), and let the record expire after `ttl` seconds. Returns the count.
local function end_run(run_key, job_key, outbox_key, event, reduced, ttl)
  local count = redis.call('HINCRBY', job_key, 'run_count', 1)
  local attrs = nil
  if not definition_is_current(run_key, job_key) then attrs = reduced end
  append_event(outbox_key, event, attrs, {'run_count', tostring(count)})
  redis.call('EXPIRE', run_key, ttl)
  return count
end
