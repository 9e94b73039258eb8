"""Running alloysync on one machine: the demo, its child processes and a private redis-server."""
