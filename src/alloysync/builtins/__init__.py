"""The built-in tasks: a job record alone defines a new job type, with no code deployed.

Registered by default (ALLOYSYNC_BUILTIN_TASKS=false turns them off): importing this package runs
their `@task` decorators; `load_task_modules` imports it first (settings.task_modules_to_load).

- `alloy.py`: `alloy.query`, `alloy.get`, `alloy.update`, `alloy.create` (the `where` shorthand:
  `where.py`);
- `http.py`: `http.request`;
- `data.py`: `data.select`, `data.filter`, `data.render`, `data.count`, `data.threshold` (the
  template sandbox: `templates.py`);
- `mail.py`: `mail.send`;
- `wait.py`: `wait.until`;
- `common.py`: rows, allow-list checks, JMESPath, times, the built-ins' memory.

They act only within the operator's allow-lists (ALLOYSYNC_BUILTIN_ALLOY_DESIGNS, _HTTP_ALLOW,
_MAIL_ALLOW): a record asking for more is Invalid before anything runs, and every task checks the
worker's own settings again when it runs. Nothing evaluates Python, shells out or reads files.
Every built-in logs what it touched through `ctx.log` (the run log). `docs/recipes.md` shows them
at work.
"""

from __future__ import annotations

from alloysync.builtins import alloy, data, http, mail, wait

__all__ = ["alloy", "data", "http", "mail", "wait"]
