"""Stop-aware threads and queues: the machinery of every streaming pipeline (engine, transcode).

A pipeline is stages (threads) joined by bounded queues and one ``stop`` event. ``put`` and ``get``
wait in short slices, so a stage leaves promptly with :class:`Cancelled` once ``stop`` is set, and
re-raise the error of a ``peer`` stage that died, so no stage waits forever on a dead one.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable

END = object()
"""Put after the last item of a queue."""

POLL_SECONDS = 0.05


class Cancelled(Exception):
    """The pipeline was stopped while this stage waited."""


class Stage(threading.Thread):
    """A daemon pipeline thread that keeps the exception that ended it (``error``) for its peers."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._body = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._body()
        except BaseException as exc:  # noqa: BLE001 - handed to the peers and the caller
            self.error = exc

    def failure(self) -> BaseException | None:
        """The error that ended this stage, unless it was a cancellation."""
        return None if isinstance(self.error, Cancelled) else self.error


def _check(stop: threading.Event, peer: Stage | None) -> None:
    if stop.is_set():
        raise Cancelled
    if peer is not None and peer.failure() is not None:
        raise peer.failure()


def put(q: queue.Queue, item: Any, stop: threading.Event, peer: Stage | None = None) -> None:
    """Put ``item``, waiting for room until ``stop`` is set (Cancelled) or ``peer`` has failed (its error)."""
    while True:
        _check(stop, peer)
        try:
            q.put(item, timeout=POLL_SECONDS)
            return
        except queue.Full:
            continue


def get(q: queue.Queue, stop: threading.Event, peer: Stage | None = None) -> Any:
    """The next item, waiting until ``stop`` is set (Cancelled) or ``peer`` has failed with the queue empty (its error)."""
    while True:
        if stop.is_set():
            raise Cancelled
        try:
            return q.get(timeout=POLL_SECONDS)
        except queue.Empty:
            _check(stop, peer)
