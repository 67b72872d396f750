"""S3: task results, written once, read through short-lived presigned URLs."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def content_disposition(filename: str) -> str:
    """Always a download: the status page stays put and active content never renders."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


class S3ResultStore:
    """Results as objects in one private bucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(
        self, key: str, body: bytes, content_type: str, filename: str, task_id: str, attempt: int
    ) -> None:
        # The task is named in tags, which a download does not return (metadata would be).
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ContentDisposition=content_disposition(filename),
            ServerSideEncryption="AES256",
            Tagging=urlencode({"task": task_id, "attempt": str(attempt)}),
        )

    def url(self, key: str, ttl_seconds: int) -> str:
        """A presigned GET URL; signing is local, no request is made."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
        )

    def read(self, key: str, limit: int) -> bytes:
        """The first `limit` bytes of a result (a ranged GET: a preview costs no more)."""
        response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit - 1}")
        return response["Body"].read()
