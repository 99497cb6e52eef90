"""Per-thread stacks of values pushed for the duration of a ``with`` block: the one mechanism
behind the library's scoped hooks (``forward.count_launches``, ``module.record_paths``,
``selection.force_tactic`` and ``selection.use_tuned_table``). Per thread, so concurrent callers
never see each other's scopes; a stack, so nested scopes each see their calls."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


class ThreadStack:
    """Values pushed by ``with stack.pushed(value):`` in this thread, innermost last."""

    def __init__(self) -> None:
        self._local = threading.local()

    def items(self) -> list | tuple:
        """This thread's pushed values, outermost first (empty outside every scope)."""
        return getattr(self._local, "items", ())

    def innermost(self) -> Any:
        """The value of this thread's innermost scope, or None."""
        items = self.items()
        return items[-1] if items else None

    @contextlib.contextmanager
    def pushed(self, value: Any) -> Iterator[Any]:
        """Push ``value`` for the duration of the ``with`` block; yields it."""
        items = self._local.__dict__.setdefault("items", [])
        items.append(value)
        try:
            yield value
        finally:
            items.pop()
