"""longtask: long-running tasks for websites, serverless on AWS (Chalice, SQS, DynamoDB, S3)."""

from .backends import Backends
from .display import ResultDisplay
from .errors import (
    AlreadyFinished,
    ConfigError,
    InvalidParams,
    KeyReused,
    LongtaskError,
    NonDeterministic,
    PartFailed,
    QuotaExceeded,
    TaskCancelled,
    TaskGone,
    TaskNotFound,
    UnknownKind,
)
from .fanout import PartFailure
from .longtasks import LongTasks
from .params import Boolean, Integer, Number, Param, Text
from .settings import Settings
from .tasks import File, TaskContext

__all__ = [
    "AlreadyFinished",
    "Backends",
    "Boolean",
    "ConfigError",
    "File",
    "Integer",
    "InvalidParams",
    "KeyReused",
    "LongTasks",
    "LongtaskError",
    "NonDeterministic",
    "Number",
    "Param",
    "PartFailed",
    "PartFailure",
    "QuotaExceeded",
    "ResultDisplay",
    "Settings",
    "TaskCancelled",
    "TaskContext",
    "TaskGone",
    "TaskNotFound",
    "Text",
    "UnknownKind",
]
