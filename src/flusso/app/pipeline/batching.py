"""The bounded queue between the capture task and the worker, and how a batch is collected.

Deviation from engine spec §2.3 step 3 (documented on purpose): the worker never
waits for a fuller batch. After the first change it takes only what is already
queued — up to `max_changes`, before the deadline — and commits as soon as the
queue is empty. Under a backlog batches still fill up; at idle a single change
is committed at once, which keeps commit→searchable within the 50 ms target
instead of adding `max_delay` to every idle write.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ChangeQueue(Generic[T]):
    """Bounded FIFO for one producer and one consumer (engine spec §1.5).

    `put` waits while full (back-pressure) and answers False once the queue is
    closed or halted. `get` waits while empty and answers None when the queue is
    closed and drained, or at once when halted (a graceful stop takes nothing more;
    what is left is dropped unconfirmed).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._items: deque[T] = deque()
        self._closed = False
        self._halted = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    async def put(self, item: T) -> bool:
        while True:
            if self._closed or self._halted:
                return False
            if len(self._items) < self._capacity:
                self._items.append(item)
                self._readable.set()
                return True
            self._writable.clear()
            await self._writable.wait()

    async def get(self) -> T | None:
        while True:
            item = self.get_nowait()
            if item is not None or self._halted or self._closed:
                return item
            self._readable.clear()
            await self._readable.wait()

    def get_nowait(self) -> T | None:
        if self._halted or not self._items:
            return None
        item = self._items.popleft()
        self._writable.set()
        return item

    def close(self) -> None:
        """The producer is done: the consumer ends once it has drained the queue."""
        self._closed = True
        self._readable.set()

    def halt(self) -> None:
        """Stop handing out items; wake both sides."""
        self._halted = True
        self._readable.set()
        self._writable.set()

    @property
    def halted(self) -> bool:
        return self._halted

    def is_empty(self) -> bool:
        return not self._items

    def __len__(self) -> int:
        return len(self._items)


def collect_batch(
    queue: ChangeQueue[T],
    first: T,
    *,
    max_changes: int,
    deadline: float,
    now: Callable[[], float],
) -> list[T]:
    """`first` plus whatever is already queued, up to `max_changes` and until `deadline`.

    Never waits: an empty queue closes the batch (see the module docstring).
    """
    batch = [first]
    while len(batch) < max(1, max_changes) and now() < deadline:
        item = queue.get_nowait()
        if item is None:
            break
        batch.append(item)
    return batch
