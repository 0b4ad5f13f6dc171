"""Reading the next batches while the model works on this one: one background thread, order kept.

Decoding an image (PIL, libjpeg, libpng) and resizing it release the GIL, so a thread that reads ahead overlaps
the model's work even in one process; `zoo reconstruct` / `encode` and `zoo eval` without DataLoader workers use
it. Errors raised while reading reach the caller at the item where they happened, with their own type.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Sequence

_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def read_ahead(items: Iterable[Any], ahead: int = 2) -> Iterator[Any]:
    """The items of `items`, in order, pulled by a background thread up to `ahead` items before the caller.

    If the caller stops early (break, an exception, the generator closed), the thread stops after the item it is
    reading and is joined, so no reader outlives the loop.
    """
    if ahead < 1:
        raise ValueError(f"ahead must be 1 or more, got {ahead}")
    ready: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def pull() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the caller, raised there
            put(_Raised(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=pull, name="zoo-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            value = ready.get()
            if value is _DONE:
                return
            if isinstance(value, _Raised):
                raise value.exc
            yield value
    finally:
        stop.set()
        thread.join()


def read_each_ahead(read: Callable[[Any], Any], items: Sequence[Any], ahead: int = 2) -> Iterator[Any]:
    """``read(item)`` for each item, in order, each read run ahead in the background thread (see `read_ahead`)."""
    return read_ahead(map(read, items), ahead)
