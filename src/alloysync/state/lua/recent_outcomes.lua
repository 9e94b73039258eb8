-- recent_outcomes(
--   keys=[job_runs, ...],
--   args=[limit, run_key_prefix, error_chars, field, ...]
-- )
--
-- job_runs        the history lists of the jobs (`job:{item}:runs`, newest first)
-- limit           how many of each job's newest runs to read
-- run_key_prefix  the run hashes' key prefix (`alloysync:run:`; a run's key is the prefix + its id)
-- error_chars     the `error` field is cut to this many characters
-- field           the run fields to read
--
-- Read-only, for the jobs page: per job, one JSON text `[[run_id, value, ...], ...]` (newest first;
-- a missing field is ''; a run whose record expired is left out). The run keys come from the lists,
-- so they are not in KEYS: a single Redis, as alloysync uses, serves them.
local limit = tonumber(ARGV[1])
local prefix = ARGV[2]
local error_chars = tonumber(ARGV[3])
local fields = {}
for index = 4, #ARGV do fields[#fields + 1] = ARGV[index] end
local answers = {}
for job_index, runs_key in ipairs(KEYS) do
  local rows = {}
  for _, run_id in ipairs(redis.call('LRANGE', runs_key, 0, limit - 1)) do
    local values = redis.call('HMGET', prefix .. run_id, unpack(fields))
    local row, found = {run_id}, false
    for field_index, field in ipairs(fields) do
      local value = values[field_index]
      if value then
        found = true
        if field == 'error' then value = string.sub(value, 1, error_chars) end
      else
        value = ''
      end
      row[#row + 1] = value
    end
    if found then rows[#rows + 1] = row end
  end
  answers[job_index] = #rows > 0 and cjson.encode(rows) or '[]'
end
return answers
