-- finish_request(
--   keys=[job],
--   args=[flag]
-- )
-- needs: helpers
--
-- Our reset of the request flag ARGV[1] ('request' or 'cancel') is on Alloy: a view requested before now may still show the flag set
-- and must not start another run (Redis time, shared by every serve replica). Returns now (ms).
local now = now_ms()
redis.call('HSET', KEYS[1], ARGV[1] .. '_pending', '0', ARGV[1] .. '_after', now)
return now
