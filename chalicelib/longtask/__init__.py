"""longtask: long-running tasks for websites, serverless on AWS (Chalice, SQS, DynamoDB, S3)."""

from .longtasks import LongTasks
from .params import Boolean, Integer, Number, Param, Text
from .settings import Settings
from .tasks import File, TaskCancelled, TaskContext

__all__ = [
    "Boolean",
    "File",
    "Integer",
    "LongTasks",
    "Number",
    "Param",
    "Settings",
    "TaskCancelled",
    "TaskContext",
    "Text",
]
