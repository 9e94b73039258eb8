-- mark_acted(
--   keys=[lease, outbox, jobs_with_max_age, job_1, ..., job_n],
--   args=[lease_value, then per record: item_id, version, registry_digest, decided_json,
--         event_count, event_1, ..., event_count]
-- )
-- needs: helpers
--
-- outbox             the stream of run events
-- jobs_with_max_age  the set of jobs whose decision has a MaxAge (the freshness check's index)
-- job_i              alloysync:job:{item_i}, the job record of the i-th record
-- event_j            Event.wire() of an event of the version (appended before it is marked)
--
-- For a page of records, in one step: appends each version's events, then records that the version
-- of the job was acted upon (runs, schedule, events taken) with the task registry (and optional
-- attributes) of `registry_digest`, and stores the decided fields (a JSON object); the job joins
-- `jobs_with_max_age` when the decision has a MaxAge and leaves it when it no longer has one. A
-- version overtaken by a newer one meanwhile is not marked (its events are appended all the same:
-- the newer version's are too, and the reporter folds them in order).
-- Returns, per record in order, 1 (marked) or 0 (a newer version arrived meanwhile); or -1 when the
-- lease is lost (nothing appended, nothing marked).
if not holds_lease(KEYS[1], ARGV[1]) then return -1 end
local replies = {}
local at = 2
local i = 0
while at <= #ARGV do
  i = i + 1
  local item, version, digest, decided_json = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local events = tonumber(ARGV[at + 4])
  for e = 1, events do append_event(KEYS[2], ARGV[at + 4 + e], nil, nil) end
  at = at + 5 + events
  local job_key = KEYS[3 + i]
  local stored = redis.call('HMGET', job_key, 'version', 'max_age')
  if stored[1] ~= version then
    replies[i] = 0
  else
    local decided = cjson.decode(decided_json)
    local fields = {'acted', version, 'acted_registry', digest}
    for name, value in pairs(decided) do
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
    redis.call('HSET', job_key, unpack(fields))
    if (decided['max_age'] or '') ~= '' then
      redis.call('SADD', KEYS[3], item)
    elseif (stored[2] or '') ~= '' then
      redis.call('SREM', KEYS[3], item)
    end
    replies[i] = 1
  end
end
return replies
