"""The queue between paho's network thread and the writer thread, bounded in messages and
in bytes: a burst of large messages makes the network thread wait (the broker keeps the
rest, QoS 1), it never grows the process."""

from __future__ import annotations

import threading
import time
from collections import deque

Item = tuple[str, bytes] | None


class Inbox:
    def __init__(self, max_items: int = 1000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: deque[Item] = deque()
        self._bytes = 0
        self._cv = threading.Condition()

    @staticmethod
    def _size(item: Item) -> int:
        return 0 if item is None else len(item[1])

    def put(self, item: Item) -> None:
        """Waits while full; a message larger than ``max_bytes`` goes in alone."""
        size = self._size(item)
        with self._cv:
            self._cv.wait_for(lambda: not self._items or (
                len(self._items) < self.max_items and self._bytes + size <= self.max_bytes))
            self._items.append(item)
            self._bytes += size
            self._cv.notify_all()

    def get(self) -> Item:
        with self._cv:
            self._cv.wait_for(lambda: bool(self._items))
            item = self._items.popleft()
            self._bytes -= self._size(item)
            self._cv.notify_all()
            return item

    def get_many(self, max_items: int, max_bytes: int, linger: float) -> list[Item]:
        """At least one item (waits for it), then whatever else is there or comes within
        ``linger`` seconds, up to ``max_items`` and ``max_bytes``; a None (stop) ends the
        list."""
        out: list[Item] = []
        size = 0
        deadline = None
        with self._cv:
            while len(out) < max_items and size < max_bytes:
                if not self._items:
                    if out:
                        deadline = deadline or time.monotonic() + linger
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._cv.wait(left):
                            break
                        continue
                    self._cv.wait_for(lambda: bool(self._items))
                item = self._items[0]
                if out and size + self._size(item) > max_bytes:
                    break
                self._items.popleft()
                self._bytes -= self._size(item)
                out.append(item)
                size += self._size(item)
                if item is None:
                    break
            self._cv.notify_all()
        return out

    def held(self) -> tuple[int, int]:
        """(messages, bytes) waiting."""
        with self._cv:
            return len(self._items), self._bytes

    def qsize(self) -> int:
        """Messages waiting (as queue.Queue says it)."""
        return self.held()[0]
