-- queue_ack(keys=[acks, messages], args=[message_id])
--
-- acks      this worker's fetched-but-not-acknowledged ids of the queue (see queue_fetch.lua)
-- messages  the queue's message bodies
--
-- Dramatiq's `ack` without its heartbeat (AlloysyncBroker.do_ack): the message is done with; its
-- body is deleted only if this worker still held it.
if redis.call('SREM', KEYS[1], ARGV[1]) > 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
