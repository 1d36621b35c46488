"""One PostgreSQL connection shared by a run's threads, and its failures as one line.

`named` wraps every method that uses the store's connection: one thread at a time on it
(the run's sending and listing threads share it, and a statement must not interleave
with another thread's), and a PostgreSQL failure (a lost connection, a dropped table)
becomes a `StoreError` naming the store without its password: the run fails, STATE
stays behind what the store recorded.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, cast

import psycopg

from target_leanpay.config.store_location import StoreError

F = TypeVar("F", bound=Callable[..., Any])


class Session(NamedTuple):
    """What the store's cache, promises and lock share: its one connection, the store as
    messages name it (no password), and the guard every use of the connection holds."""

    connection: psycopg.Connection[tuple[Any, ...]]
    where: str
    guard: threading.RLock


def one_line(error: BaseException) -> str:
    """A PostgreSQL error on one line (libpq's span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def named(method: F) -> F:
    """`method` under its object's `_guard`, its PostgreSQL failures named by `where`."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._guard:
                return method(self, *args, **kwargs)
        except psycopg.Error as failed:
            raise StoreError(
                f"The store {self.where} failed: {one_line(failed)}; no STATE is written "
                "past what it recorded"
            ) from None

    return cast(F, wrapper)
