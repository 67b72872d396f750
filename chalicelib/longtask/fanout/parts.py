"""What a part of a map does: find its function, run it on its item, keep the result."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..backends import Backends
from ..backends.keys import part_result_key
from ..errors import NotFoundByName
from ..model import PartOf, TaskRecord
from .values import Values


def function_ref(fn: Callable[..., Any]) -> str:
    """ "module:qualname" of a module-level function, the way a part finds it again."""
    ref = f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}"
    if "<" in ref or resolve(ref) is not fn:
        raise NotFoundByName(
            f"ctx.map needs a function defined at the top level of a module, not {fn!r}: "
            "each part runs it in another worker, which finds it by its name"
        )
    return ref


def resolve(ref: str) -> Callable[..., Any]:
    module_name, _, qualname = ref.partition(":")
    target: Any = importlib.import_module(module_name)
    for name in qualname.split("."):
        target = getattr(target, name)
    if not callable(target):
        raise TypeError(f"{ref} is not a function")
    return target  # type: ignore[no-any-return]


class Part:
    """A part of a map, as the worker that claimed it runs it."""

    def __init__(self, task: TaskRecord, backends: Backends) -> None:
        assert task.part is not None
        self.task = task
        self.member: PartOf = task.part
        self.store = backends.store
        self.values = Values(backends.results, task.id)

    def parent_ended(self) -> bool:
        """Whether the task it is a part of has ended (cancelled or failed), which ends it."""
        parent = self.store.get(self.member.parent)
        return parent is None or parent.is_terminal

    def run(self, ctx: Any) -> None:
        """Runs the map's function on the item and keeps the result for the map."""
        member = self.member
        item = member.item if member.item_at is None else self.values.read_large(member.item_at)
        value = resolve(member.function)(item, ctx)
        key = part_result_key(member.map, member.index)
        self.store.memo_put(key, self.values.pack(value, key), self.task.expires_at)
