"""Run the CPU-heavy steps of a large review in a worker thread.

Planning a pod with tens of thousands of env vars takes seconds of CPU. On
the event loop that would stall every other request, /healthz included, so
kubelet could restart a healthy process. In a worker thread it still holds
the GIL, but Python switches threads every few milliseconds
(sys.getswitchinterval), so the loop keeps serving small requests.
Small reviews stay on the loop, where a thread hand-off would cost more
than the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

# Request bodies above this size are planned in a worker thread. Planning
# takes about 1 s per MiB of env vars (a 3 MiB pod took 3.7 s), so a body
# below it stalls the loop for a quarter of a second at most.
LARGE_BODY_BYTES = 256 * 1024

# The body size of the review that the current task handles; /mutate sets it.
body_bytes: ContextVar[int] = ContextVar("body_bytes", default=0)

P = ParamSpec("P")
T = TypeVar("T")


async def off_loop_if_large(
    function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Call `function`, in a worker thread when the current body is large."""
    if body_bytes.get() > LARGE_BODY_BYTES:
        return await asyncio.to_thread(function, *args, **kwargs)
    return function(*args, **kwargs)
