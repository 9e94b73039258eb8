-- finish_request(
--   keys=[job],
--   args=[]
-- )
-- needs: helpers
--
-- Our reset of RunRequested is on Alloy: a view requested before now may still show the flag set
-- and must not start another run (Redis time, shared by every serve replica). Returns now (ms).
local now = now_ms()
redis.call('HSET', KEYS[1], 'request_pending', '0', 'request_after', now)
return now
