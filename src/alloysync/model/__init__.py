"""Pure code: the job model, cron, fire and version planning, events, the task registry, times.

Nothing in this package talks to Redis, HTTP or the clock of another process: every function
takes what it decides on as arguments, so it is tested without any running service.
"""
