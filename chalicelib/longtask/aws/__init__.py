"""The AWS implementation of the storage interface: DynamoDB, SQS and S3."""

from __future__ import annotations

from typing import Any

from ..backends import Backends
from ..settings import Settings


def aws_backends(settings: Settings) -> Backends:
    """DynamoDB, SQS and S3 from the settings' names (ConfigError naming what is unset).

    boto3 is imported here, on first use: the in-memory backends never need it."""
    import boto3
    from botocore.config import Config

    from .queue import SqsTaskQueue
    from .results import S3ResultStore
    from .store import DynamoTaskStore

    table, queue, bucket = (settings.resource(n) for n in ("table", "queue", "bucket"))
    plan = None
    if settings.faults:
        from ..faults import FaultPlan

        plan = FaultPlan.parse(settings.faults)

    def client(service: str) -> Any:
        config = Config(
            retries={"mode": "standard"},
            signature_version="s3v4" if service == "s3" else None,
            s3={"addressing_style": "path"} if settings.endpoint_url else {},
        )
        session: Any = boto3.session.Session()
        made = session.client(service, endpoint_url=settings.endpoint_url, config=config)
        if plan is not None:
            from ..faults import inject

            inject(made, plan)
        return made

    return Backends(
        DynamoTaskStore(client("dynamodb"), table, settings.retention_seconds),
        SqsTaskQueue(client("sqs"), queue),
        S3ResultStore(client("s3"), bucket),
    )
