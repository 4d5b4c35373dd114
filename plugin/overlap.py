"""Overlap decoding, editing and encoding on separate threads, with bounded memory.

The render pass is a chain: decode -> stages -> encode. Run in one thread, a 1080p pass-through
keeps only 1.3 of 2 cores busy (``bench/perf.py`` measures it), because decoding and the
conversion to RGB wait for the encoder and the other way round. FFmpeg's decoders and x264 release
the GIL while they work, as do OpenCV, NumPy and torch kernels, so plain threads overlap them.

- :class:`Prefetch` runs an iterator (the reader) on a worker thread, ``depth`` items ahead.
- :class:`BackgroundSink` feeds items to a function (the writer) on a worker thread, ``depth``
  items behind.
- :func:`ordered_map` runs a stateless stage on several frames at once, keeping their order.

Both queues are bounded, so memory stays flat whatever the clip's length. An exception on a
worker is raised again in the calling thread, at the next item it asks for (:class:`Prefetch`)
or gives (:class:`BackgroundSink`), and at ``close``. Closing early (an error or Ctrl-C in the
caller) stops the worker at its next item and waits for it, so that the caller can clean up the
resources the worker used (delete a half-written output) without racing it.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

from tracking.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

#: Frames decoded ahead of, or waiting behind, the stages: 4 x 6 MB at 1080p RGB.
DEFAULT_DEPTH = 4
#: How often a blocked worker looks whether it was told to stop (seconds).
_POLL_S = 0.05


class _Done:
    """End-of-stream marker."""


_DONE = _Done()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(q: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item`` on ``q``, giving up (False) once ``stop`` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class Prefetch(Generic[T]):
    """Iterate ``source`` on a worker thread, up to ``depth`` items ahead of the consumer.

    Use as a context manager (or call :meth:`close`) so the worker stops when the consumer does.

    Args:
        source: any iterable; it is iterated on the worker thread only.
        depth: most items held ready (>= 1).
        name: the worker thread's name (for debugging).
    """

    def __init__(self, source: Iterable[T], depth: int = DEFAULT_DEPTH, name: str = "deltaface-prefetch") -> None:
        if depth < 1:
            raise ConfigError(f"Prefetch depth must be >= 1, got {depth}")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._source = source
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._source:
                if not _put(self._queue, item, self._stop):
                    break
            else:
                _put(self._queue, _DONE, self._stop)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            _put(self._queue, _Failure(exc), self._stop)
        finally:
            close = getattr(self._source, "close", None)
            if self._stop.is_set() and callable(close):
                close()  # a generator stopped early releases its decoder here, on its own thread

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _Done):
            self._finished = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Failure):
            self._finished = True
            self._thread.join()
            raise item.error
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the worker (if still running) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                pass
        self._finished = True

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class BackgroundSink(Generic[T]):
    """Call ``consume(item)`` for every :meth:`put` item, in order, on a worker thread.

    Args:
        consume: called on the worker thread only.
        depth: most items waiting (>= 1); :meth:`put` blocks while the queue is full.
        name: the worker thread's name.
    """

    def __init__(self, consume: Callable[[T], None], depth: int = DEFAULT_DEPTH,
                 name: str = "deltaface-sink") -> None:
        if depth < 1:
            raise ConfigError(f"BackgroundSink depth must be >= 1, got {depth}")
        self._consume = consume
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _Done):
                return
            try:
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as exc:  # re-raised in the producer
                self._error = exc
                self._stop.set()
                return

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item: T) -> None:
        """Queue ``item``; raises the worker's error if it failed on an earlier item."""
        while True:
            self._raise_error()
            if not self._thread.is_alive():
                self._raise_error()
                raise RuntimeError("background sink stopped")
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every queued item is consumed; raises the worker's error if any."""
        if self._thread.is_alive():
            _put(self._queue, _DONE, self._stop)
            while self._thread.is_alive():
                self._thread.join(timeout=_POLL_S)
                if self._error is not None:
                    break
        self._raise_error()

    def close(self) -> None:
        """Stop the worker without consuming what is still queued, and wait for it."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BackgroundSink[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int = 2, depth: int = DEFAULT_DEPTH) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, results in the items' order.

    At most ``depth`` items are in flight, so memory stays bounded. ``fn`` must be safe to call
    from several threads at once (the edit stage is: it keeps no state between frames). Closing
    the iterator early (an error or Ctrl-C in the consumer) waits for the calls in flight and
    drops the rest.

    Args:
        fn: the function; called on worker threads.
        items: iterated on the calling thread.
        workers: threads (>= 1).
        depth: most items submitted and not yet returned (>= workers).

    Yields:
        ``fn(item)`` for every item, in order; an exception of ``fn`` is raised at its item.
    """
    if workers < 1 or depth < workers:
        raise ConfigError(f"ordered_map needs workers >= 1 and depth >= workers, got {workers}, {depth}")
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deltaface-stage")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            while len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)
