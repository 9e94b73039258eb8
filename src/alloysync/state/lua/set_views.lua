-- set_views(
--   keys=[jobs, job_1, ..., job_n],
--   args=[item_1, count_1, name, value, ... (count_1 pairs), item_2, count_2, ...]
-- )
--
-- jobs     the set of known job item ids
-- job_i    the job hash of item_i (`job:{item_i}`)
-- count_i  how many name/value pairs of `view_*` fields follow item_i
--
-- The reporter's view of the latest reported state of n items (for the jobs page), in one step:
-- the fields of each *known* job are set; an item that is not a known job gets no hash.
-- Which items are known jobs is asked once for the batch (SMISMEMBER).
-- Returns how many jobs were updated.
local items = {}
local at = 1
for i = 2, #KEYS do
  items[i - 1] = ARGV[at]
  at = at + 2 + 2 * tonumber(ARGV[at + 1])
end
local known = redis.call('SMISMEMBER', KEYS[1], unpack(items))
local updated = 0
at = 1
for i = 2, #KEYS do
  local count = tonumber(ARGV[at + 1])
  local first = at + 2
  at = first + 2 * count
  if count > 0 and known[i - 1] == 1 then
    redis.call('HSET', KEYS[i], unpack(ARGV, first, at - 1))
    updated = updated + 1
  end
end
return updated
