"""`python -m longtask policies`: a stage of the app in this directory, ready to deploy.

    python -m longtask policies --stage prod [--account-id ID] [--region R] [--one-stack]

Reads the stage's LONGTASK_TABLE, LONGTASK_QUEUE, LONGTASK_DLQ and LONGTASK_BUCKET from
.chalice/config.json, writes .chalice/policy-<stage>-<function>.json for each function
longtask adds (the API, the worker, the dead-letter handler, the reconciler) with exactly
what it needs on those resources, and points each function at its file with Chalice's
own policy generation off; `chalice deploy --stage <stage>` then deploys them so. With
--one-stack the policies refer to the resources of the infra template merged by
`chalice package --merge-template`, instead of naming their ARNs. The account is the
credentials' own (or --account-id), the region AWS_REGION's (or --region).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import policies
from .stage import stage_names, write_stage


def credentials_account(session: Any) -> str:
    """The account of a boto3 session's credentials (ConfigError when there are none)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(session.client("sts").get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as error:
        raise ConfigError(f"no usable AWS credentials: {error}") from None


def _account_of_credentials(region: str) -> tuple[str, str]:
    """The credentials' account and the region's partition (needs boto3)."""
    try:
        import boto3
    except ImportError:
        raise ConfigError("give --account-id (or install boto3 to ask AWS)") from None
    session = boto3.session.Session(region_name=region)
    return credentials_account(session), session.get_partition_for_region(region)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m longtask", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("policies", help="write the stage's policies and names")
    command.add_argument("--stage", required=True)
    command.add_argument("--project-dir", type=Path, default=Path.cwd())
    command.add_argument("--account-id", help="default: the AWS credentials' account")
    command.add_argument("--region", help="default: AWS_REGION or AWS_DEFAULT_REGION")
    command.add_argument("--partition", help="default: the region's (aws, aws-cn, ...)")
    command.add_argument(
        "--one-stack", action="store_true", help="for chalice package --merge-template"
    )
    args = parser.parse_args(argv)
    config_file = args.project_dir / ".chalice" / "config.json"
    try:
        region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise ConfigError("no AWS region: give --region (or set AWS_REGION)")
        names = stage_names(config_file, args.stage)
        if args.account_id:
            account, partition = args.account_id, args.partition or _partition(region)
        else:
            account, partition = _account_of_credentials(region)
            partition = args.partition or partition
        form = policies.CLOUDFORMATION if args.one_stack else policies.LITERAL
        outputs = policies.resource_arns(names, account, region, partition)
        written = write_stage(config_file, args.stage, outputs, account, region, partition, form)
    except ConfigError as error:
        print(f"longtask: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    print(f"next: chalice deploy --stage {args.stage}")
    return 0


def _partition(region: str) -> str:
    """The partition of a region by its name, as AWS names them."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
