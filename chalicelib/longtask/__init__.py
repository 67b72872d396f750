"""longtask: long-running tasks for websites, serverless on AWS (Chalice, SQS, DynamoDB, S3)."""

from .backends import Backends
from .display import ResultDisplay
from .longtasks import LongTasks
from .params import Boolean, Integer, InvalidParams, Number, Param, Text
from .settings import ConfigError, Settings
from .tasks import File, TaskCancelled, TaskContext

__all__ = [
    "Backends",
    "Boolean",
    "ConfigError",
    "File",
    "Integer",
    "InvalidParams",
    "LongTasks",
    "Number",
    "Param",
    "ResultDisplay",
    "Settings",
    "TaskCancelled",
    "TaskContext",
    "Text",
]
