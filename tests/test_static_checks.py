"""Static security checks: checkov on the CloudFormation that production gets, parliament on
every IAM policy the functions get. Zero findings, except the ones skipped with a reason.

Skips of infra/template.yaml sit in the template, in each resource's Metadata. The packaged
template is Chalice's output, so its skips and their reasons are listed here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

from dev.deploy import policies
from dev.stage import CONFIG_FILE, ROOT, TEMPLATE_FILE

from .test_packaging import _copy_project, _package

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

# checkov's findings on what `chalice package` adds, each accepted for a reason.
PACKAGED_SKIPS = {
    "CKV_AWS_116": "A Lambda DLQ catches failed asynchronous invocations; these functions "
    "are invoked synchronously by API Gateway and by SQS event sources, whose queues have "
    "their own redrive policy to the dead-letter queue.",
    "CKV_AWS_117": "The functions call only DynamoDB, SQS and S3, over TLS and by IAM; a VPC "
    "would add NAT or endpoints and cold-start time and protect nothing here.",
    "CKV_AWS_115": "The worker has reserved concurrency (the cost cap). The API is limited "
    "by the stage throttle that make deploy sets, and dead_letters by its queue, where "
    "reserving concurrency would only take it from the account's pool.",
    "CKV_AWS_173": "The environment holds resource names and limits, no secrets; Lambda "
    "encrypts it at rest with its AWS managed key.",
    "CKV_AWS_158": "CloudWatch Logs encrypts every log group at rest; a customer managed key "
    "adds a key policy for the logs service and no protection, as the logs expire after 30 days.",
    "CKV_AWS_73": "X-Ray is a stage option (`xray` in .chalice/config.json), off by default "
    "for its cost per trace.",
    "CKV_AWS_76": "Access logs are set on the stage by make deploy after chalice deploy "
    "(dev/deploy/api_stage.py); Chalice's template cannot declare them.",
    "CKV_AWS_120": "Every task answer is per task and Cache-Control: no-store; a cache would "
    "serve stale status.",
}

# parliament's findings that are accepted, by policy file and issue: none.
PARLIAMENT_ACCEPTED: dict[tuple[str, str], str] = {}


def checkov(template: Path, skips: dict[str, str] | None = None) -> dict[str, Any]:
    assert CHECKOV.exists(), f"no {CHECKOV}: run `make test` (it makes .venv-checkov)"
    command = [str(CHECKOV), "-f", str(template), "--framework", "cloudformation", "-o", "json"]
    command += ["--compact"]
    if skips:
        command += ["--skip-check", ",".join(skips)]
    # Offline: checkov otherwise asks its vendor's API for guideline links first.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_COLORS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    return dict(report[0] if isinstance(report, list) else report)


def failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report.get("results", {}).get("failed_checks", [])
    ]


def test_checkov_finds_nothing_in_the_infra_template() -> None:
    report = checkov(TEMPLATE_FILE)
    assert not failures(report), failures(report)
    # Every skip in the template says why.
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"].get("suppress_comment", "")) > 40, skipped


def test_checkov_finds_nothing_in_the_packaged_prod_template(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project = _copy_project(tmp_path_factory.mktemp("checkov"), policies.CLOUDFORMATION)
    out = _package(project, "--merge-template", "infra/template.yaml")
    report = checkov(out / "sam.yaml", PACKAGED_SKIPS)
    assert not failures(report), failures(report)
    assert report["summary"]["passed"] > 40


def _policies() -> dict[str, str]:
    """Every policy a function gets: the committed dev files and what deploy writes for prod."""
    documents = {p.name: p.read_text() for p in CONFIG_FILE.parent.glob("policy-*.json")}
    outputs = policies.expected_outputs("prod", policies.LOCAL_ACCOUNT_ID, policies.LOCAL_REGION)
    for function in policies.FUNCTIONS:
        document = policies.policy_document(
            function,
            "prod",
            outputs,
            policies.LOCAL_ACCOUNT_ID,
            policies.LOCAL_REGION,
            app=policies.app_name(),
        )
        documents[policies.policy_file_name("prod", function)] = json.dumps(document)
    return documents


def test_parliament_finds_nothing_in_any_functions_policy() -> None:
    documents = _policies()
    assert len(documents) == 2 * len(policies.FUNCTIONS)
    found = []
    for name, document in documents.items():
        analysis = analyze_policy_string(document, include_community_auditors=True)
        for finding in analysis.findings:
            if (name, finding.issue) not in PARLIAMENT_ACCEPTED:
                found.append(f"{name}: {finding.issue} {finding.detail}")
    assert not found, found
