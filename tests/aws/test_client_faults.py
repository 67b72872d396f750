"""The fault layer on real AWS clients, against a moto server over HTTP: botocore's own
retries resend a call whose answer was lost, and longtask's stores recognise their own
applied writes (by the token in the record, and by the transaction's ClientRequestToken,
which the local moto keeps as DynamoDB does); a call refused past the retries is AWS
trouble, never a wrong answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from chalicelib.longtask.aws import aws_backends
from chalicelib.longtask.aws.queue import SqsTaskQueue
from chalicelib.longtask.aws.results import S3ResultStore
from chalicelib.longtask.aws.store import DynamoTaskStore
from chalicelib.longtask.backends import Admission, keys
from chalicelib.longtask.backends.writes import ACTIVE, ending
from chalicelib.longtask.errors import aws_trouble
from chalicelib.longtask.faults import Fault, FaultPlan, inject
from chalicelib.longtask.model import Status, TaskRecord
from chalicelib.longtask.settings import Settings
from dev.local.moto_server import make_dynamodb_writes_atomic
from tests.aws.conftest import NAMES, create_infra

NOW = 1_800_000_000.0
OWNER = "e" * 64


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    make_dynamodb_writes_atomic()
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    create_infra(boto3.client("cloudformation", endpoint_url=url))
    yield url
    server.stop()


def client(endpoint: str, service: str, plan: FaultPlan) -> Any:
    config = Config(retries={"mode": "standard"}, s3={"addressing_style": "path"})
    return inject(boto3.client(service, endpoint_url=endpoint, config=config), plan)


def record(number: int) -> TaskRecord:
    return TaskRecord(
        id=f"f{number:021d}",
        kind="primes",
        params={},
        created_at=NOW,
        updated_at=NOW,
        owner=OWNER,
        status=Status.STARTED,
    )


def store(endpoint: str, plan: FaultPlan) -> DynamoTaskStore:
    return DynamoTaskStore(client(endpoint, "dynamodb", plan), NAMES["LONGTASK_TABLE"], 86400)


def active(endpoint: str) -> int:
    item = boto3.client("dynamodb", endpoint_url=endpoint).get_item(
        TableName=NAMES["LONGTASK_TABLE"],
        Key={"id": {"S": keys.owner_item_id(OWNER)}},
        ConsistentRead=True,
    )
    return int(item.get("Item", {}).get(ACTIVE, {}).get("N", 0))


def test_a_conditional_update_whose_answer_was_lost_is_recognised(endpoint: str) -> None:
    plan = FaultPlan(script={"UpdateItem": (Fault.LOST,)})
    tasks = store(endpoint, plan)
    tasks.create(record(1))
    updated = tasks.update(record(1).id, {"attempts": 1})
    assert updated.attempts == 1
    assert plan.injected[("lost", "UpdateItem")] == 1
    assert tasks.get(record(1).id).attempts == 1  # type: ignore[union-attr]


def test_an_admission_end_and_release_whose_answers_were_lost_count_once(endpoint: str) -> None:
    # Each transaction: its first try applied with the answer lost, its retry answered.
    plan = FaultPlan(script={"TransactWriteItems": (Fault.LOST, None, Fault.LOST, None)})
    tasks = store(endpoint, plan)
    before = active(endpoint)
    tasks.admit(record(2), Admission(OWNER, 50, 50, NOW))  # lost, retried, recognised
    assert active(endpoint) == before + 1
    admitted = tasks.get(record(2).id)
    assert admitted is not None
    # The write that ends it gives its place back in the same transaction: lost too.
    tasks.update(record(2).id, ending(admitted, {"status": Status.DONE, "finished_at": NOW + 1}))
    assert active(endpoint) == before
    assert tasks.get(record(2).id).status is Status.DONE  # type: ignore[union-attr]
    assert plan.injected[("lost", "TransactWriteItems")] == 2


def test_a_release_whose_answer_was_lost_says_it_gave_the_place_back(endpoint: str) -> None:
    tasks = store(endpoint, FaultPlan())
    tasks.admit(record(3), Admission(OWNER, 50, 50, NOW))
    tasks.update(record(3).id, {"status": Status.CANCELLED, "finished_at": NOW})  # still counted
    before = active(endpoint)
    lossy = store(endpoint, FaultPlan(script={"TransactWriteItems": (Fault.LOST,)}))
    assert lossy.release(record(3).id) is True
    assert active(endpoint) == before - 1


def test_a_repeated_client_request_token_with_other_items_is_refused(endpoint: str) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)

    def put(value: str) -> None:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": NAMES["LONGTASK_TABLE"],
                        "Item": {"id": {"S": "token-test"}, "value": {"S": value}},
                    }
                }
            ],
            ClientRequestToken="the-same-token",
        )

    put("first")
    put("first")  # the same transaction again: a success that changes nothing
    with pytest.raises(dynamodb.exceptions.ClientError, match="IdempotentParameterMismatch"):
        put("second")


def test_a_call_refused_past_the_sdks_retries_is_aws_trouble(endpoint: str) -> None:
    refused = (Fault.THROTTLED, Fault.SERVER_ERROR, Fault.RESET, Fault.THROTTLED)
    tasks = store(endpoint, FaultPlan(script={"GetItem": refused}))
    with pytest.raises(Exception) as raised:
        tasks.get(record(1).id)
    assert aws_trouble(raised.value), raised.value


def test_refused_calls_of_each_service_are_retried_and_succeed(endpoint: str) -> None:
    plan = FaultPlan(
        script={
            "GetItem": (Fault.THROTTLED,),
            "SendMessage": (Fault.SERVER_ERROR, Fault.RESET),
            "PutObject": (Fault.THROTTLED,),
        }
    )
    tasks = store(endpoint, plan)
    tasks.create(record(4))
    assert tasks.get(record(4).id) is not None
    sqs = client(endpoint, "sqs", plan)
    url = sqs.get_queue_url(QueueName=NAMES["LONGTASK_QUEUE"])["QueueUrl"]
    SqsTaskQueue(sqs, NAMES["LONGTASK_QUEUE"]).send(record(4).id)
    assert boto3.client("sqs", endpoint_url=endpoint).receive_message(QueueUrl=url)["Messages"]
    results = S3ResultStore(client(endpoint, "s3", plan), NAMES["LONGTASK_BUCKET"])
    results.put("results/faulted", b"body", "text/plain", "a.txt", record(4).id, 1)
    assert results.read("results/faulted", 10) == b"body"
    assert sum(plan.by_kind().values()) == 4


def test_the_setting_puts_faults_on_every_client(endpoint: str) -> None:
    settings = Settings(
        table=NAMES["LONGTASK_TABLE"],
        queue=NAMES["LONGTASK_QUEUE"],
        bucket=NAMES["LONGTASK_BUCKET"],
        endpoint_url=endpoint,
        faults="rate=1,lost=0,ops=GetItem",
    )
    backends = aws_backends(settings)
    with pytest.raises(Exception) as raised:
        backends.store.get(record(1).id)
    assert aws_trouble(raised.value)
