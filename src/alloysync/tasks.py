"""`alloysync.tasks`: where task modules import `task` from (kept for existing task modules).

The registry itself lives in `alloysync.model.registry`; `from alloysync import task` is the same.
"""

from alloysync.model.registry import (
    REGISTRY,
    ParamsError,
    RegisteredTask,
    TaskDefinitionError,
    TaskModuleError,
    TaskRegistry,
    load_task_modules,
    task,
)

__all__ = [
    "REGISTRY",
    "ParamsError",
    "RegisteredTask",
    "TaskDefinitionError",
    "TaskModuleError",
    "TaskRegistry",
    "load_task_modules",
    "task",
]
