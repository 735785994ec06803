"""The tasks, one class per module on :class:`~trainer.tasks.base.Task`, and their registry.

``TASKS`` maps each task name to its class; ``build_task(datamodule)`` builds the task a
datamodule declares. Importing this package registers the shipped tasks; a new task is a module
here with a ``@register``-ed subclass, imported below.
"""

from trainer.tasks.base import TASKS, Task, build_task, register
from trainer.tasks.boxes import Boxes
from trainer.tasks.classification import Classification
from trainer.tasks.regression import Regression
from trainer.tasks.restoration import Restoration
from trainer.tasks.retrieval import Retrieval
from trainer.tasks.segmentation import Segmentation

__all__ = [
    "TASKS",
    "Boxes",
    "Classification",
    "Regression",
    "Restoration",
    "Retrieval",
    "Segmentation",
    "Task",
    "build_task",
    "register",
]
