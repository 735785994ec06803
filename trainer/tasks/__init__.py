"""The tasks, one class per module on :class:`~trainer.tasks.base.Task`, and their registry.

``TASKS`` maps each task name to its class; ``build_task(datamodule)`` builds the task a
datamodule declares. Importing this package imports every module in it, so each one's
``@register``-ed class is in ``TASKS``: a new task is a new module here, listed nowhere.
"""

import importlib
import pkgutil

from trainer.tasks.base import TASKS, Task, build_task, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TASKS", "Task", "build_task", "register"]
