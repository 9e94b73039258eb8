-- queue_fetch(keys=[queue, messages, acks], args=[count])
--
-- queue     a Dramatiq queue (`{namespace}:{queue}`, a list of message ids)
-- messages  its message bodies (`{namespace}:{queue}.msgs`, a hash: id -> encoded message)
-- acks      this worker's fetched-but-not-acknowledged ids of the queue
--           (`{namespace}:__acks__.{broker_id}.{queue}`, a set)
--
-- Dramatiq's `fetch` without its heartbeat (AlloysyncBroker.do_fetch): takes up to `count` ids
-- off the queue, files them in the worker's acks set (so that maintenance puts them back when the
-- worker dies) and returns their bodies, in one step. The same keys as Dramatiq's dispatch.lua.
local ids = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not ids then return {} end
redis.call('SADD', KEYS[3], unpack(ids))
return redis.call('HMGET', KEYS[2], unpack(ids))
