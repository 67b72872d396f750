"""Every id scheme of the items that share the task table with the task records.

A task id is 22 characters of URL-safe base64, so "#" never occurs in one: every other
item's id holds a "#", and no item but a task record carries an `owner`, so none of them
ever shows up in the owner index. Both backends keep their items under these ids.
"""

from __future__ import annotations

import base64
import hashlib


def owner_id(token: str) -> str:
    """What records keep of an owner's secret (a cookie's token): a hash, never the secret."""
    return hashlib.sha256(f"longtask-owner:{token}".encode()).hexdigest()


def principal_owner(principal: str) -> str:
    """The owner id of a caller that an authorizer names, and of the host code's own
    users (`tasks.start(kind, owner="user-42")` is the owner the principal "user-42" is)."""
    return owner_id(f"principal:{principal}")


# Whose idempotency keys the host code's starts without an owner use. An owner id is 64
# hex digits, so no caller's owner is ever this.
HOST_KEYS = "host"


def checkpoint_item_id(task_id: str) -> str:
    """The item that holds a task's checkpoint when it is too large for the record."""
    return f"{task_id}#checkpoint"


def owner_item_id(owner: str) -> str:
    """The item that counts an owner's active tasks."""
    return f"owner#{owner}"


def starts_item_id(owner: str, minute: int) -> str:
    """The item that counts an owner's starts in one minute (epoch minutes)."""
    return f"starts#{owner}#{minute}"


def start_key_item_id(key: str) -> str:
    """The item that remembers which task an idempotency key started."""
    return f"start#{key}"


def operation_key(task_id: str, position: int) -> str:
    """The memo of a task's operation (a step or a map) at `position` (1 for the first
    ctx.step or ctx.map a run calls)."""
    return f"{task_id}#op{position}"


def part_result_key(map_key: str, index: int) -> str:
    """The memo of the result of part `index` of a map."""
    return f"{map_key}#result{index}"


def part_id(map_key: str, index: int) -> str:
    """The task id of part `index` of a map: derived, so a replay finds the same parts;
    as unguessable as the task id it derives from."""
    digest = hashlib.sha256(f"{map_key}:{index}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def large_value_key(memo_key: str, what: str) -> str:
    """The result-store object that holds a value too large for its memo."""
    digest = hashlib.sha256(f"{memo_key}:{what}".encode()).hexdigest()[:40]
    return f"results/parts/{digest}"
