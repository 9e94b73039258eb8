"""alloysync: run jobs marked in Alloy on a Dramatiq worker pool and write their outcome back.

Task modules use the task API exported here: `from alloysync import task, RunContext`.
"""

__version__ = "0.1.0"

from alloysync.model.context import RunContext
from alloysync.model.registry import ParamsError, TaskDefinitionError, TaskRegistry, task

__all__ = ["ParamsError", "RunContext", "TaskDefinitionError", "TaskRegistry", "__version__", "task"]
