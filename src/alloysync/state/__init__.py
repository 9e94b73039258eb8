"""alloysync's state in Redis: the only package that names alloysync's keys or sends Redis commands
on them.

`keys` names every key, `records` types the run and job hashes, `scripts` loads the Lua scripts in
`lua/`, and each store module owns one part of the state (jobs, runs, claims, the outbox, the
lease, sync, schedules, queue stats). See docs/architecture.md for the keys table.
"""
