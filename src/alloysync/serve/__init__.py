"""`alloysync serve`: HTTP, the poller lease, and (while holding it) the poller and the reporter."""
