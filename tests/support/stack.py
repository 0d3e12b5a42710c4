"""Running the three services as separate processes for a test, each test on topics of its own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from backflush_shared.local_stack import LocalStack
from backflush_shared.persistence.database import read_once as read_db

T = TypeVar("T")


def new_prefix() -> str:
    """Topic prefix and consumer-group prefix that no other test shares on the session broker."""
    return f"t{uuid.uuid4().hex[:10]}."


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = 45.0, what: str = "condition",
                     stack: LocalStack | None = None) -> T:
    """Poll until `check` returns something truthy; fail with the services' log tails otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except Exception:  # noqa: BLE001 - tables may not exist yet while a service starts
            last = None
        if last:
            return last
        await asyncio.sleep(0.25)
    logs = ""
    if stack is not None:
        logs = "\n".join(f"--- {name}\n{p.log_tail(15)}" for name, p in stack.processes.items())
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}\n{logs}")


def make_stack(bootstrap_servers: str, workdir: Path, **kwargs: Any) -> LocalStack:
    return LocalStack(bootstrap_servers=bootstrap_servers, workdir=workdir, topic_prefix=new_prefix(), **kwargs)
