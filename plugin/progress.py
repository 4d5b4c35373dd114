"""Progress of the long steps (tracking, rendering) as the command line shows it.

One :class:`Progress` per step is handed to the step as its ``progress(done, total)`` callback
(:data:`plugin.pipeline.ProgressCallback`). What it writes depends on where it writes:

- a terminal (``stream.isatty()``): one line redrawn in place with ``\\r``, at most every
  :data:`BAR_INTERVAL_S`: ``track  [########------------]  40/100 frames  12.5 fps  ETA 0:05``,
  ended with a newline when the step finishes (or is closed early);
- anything else (a log file, a pipe, CI): a plain line at most every ``interval`` seconds
  (:data:`LINE_INTERVAL_S`), and one when the step finishes:
  ``track: 40/100 frames, 12.5 fps, ETA 0:05``;
- ``quiet``: nothing.

This module belongs to the command line: it writes only to the stream it is given (stderr), never
to stdout, which ``--json`` keeps for its one summary.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

#: Least seconds between two plain progress lines (non-terminal output).
LINE_INTERVAL_S = 3.0
#: Least seconds between two redraws of the terminal bar.
BAR_INTERVAL_S = 0.1
#: Characters of the bar itself.
BAR_WIDTH = 24
#: Frames to see before an ETA is shown (the first frames include model start-up).
ETA_MIN_FRAMES = 2


def eta_seconds(done: int, total: int | None, elapsed_s: float, since: int = 0) -> float | None:
    """Seconds left at the mean rate so far, or None when it cannot be known.

    Args:
        done: frames finished.
        total: frames in all, or None when unknown.
        elapsed_s: seconds since the clock started, when ``since`` frames were done.
        since: frames done when the clock started (the first report: its own time is unknown).

    Returns:
        ``(total - done) * elapsed_s / (done - since)``; 0 when done; None with no total, fewer
        than :data:`ETA_MIN_FRAMES` frames timed, or no time elapsed.
    """
    if total is None or total <= 0:
        return None
    if done >= total:
        return 0.0
    timed = done - since
    if timed < ETA_MIN_FRAMES or not elapsed_s > 0:
        return None
    return (total - done) * elapsed_s / timed


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` or ``M:SS`` (rounded up to the second); ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = max(0, math.ceil(seconds - 1e-9))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Progress of one step, as a callback ``progress(done, total)``; use it as a context manager.

    Args:
        label: the step's name (``"track"``, ``"render"``).
        quiet: write nothing.
        stream: where to write; default ``sys.stderr`` as it is when the step reports.
        interval: least seconds between plain lines.
        clock: monotonic seconds (tests pass a fake clock).
        tty: force terminal (bar) or plain mode; default ``stream.isatty()``.
    """

    def __init__(self, label: str, quiet: bool = False, *, stream: TextIO | None = None,
                 interval: float = LINE_INTERVAL_S, clock: Callable[[], float] = time.monotonic,
                 tty: bool | None = None) -> None:
        self.label, self.quiet, self.interval, self.clock = label, quiet, interval, clock
        self._stream = stream
        self._tty = tty
        self.started: float | None = None
        self.started_at = 0
        self._last_write = -math.inf
        self._bar_open = False
        self._written_done = -1
        self.done = 0
        self.total: int | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def is_tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except (OSError, ValueError):
            return False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        elif self._bar_open:  # the error message that follows starts on a line of its own
            self._end_bar()

    def elapsed(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started

    def fps(self) -> float | None:
        """Mean frames per second since the first report, or None before a second one."""
        el = self.elapsed()
        timed = self.done - self.started_at
        return timed / el if el > 0 and timed > 0 else None

    def __call__(self, done: int, total: int | None) -> None:
        now = self.clock()
        if self.started is None:  # the clock starts at the first report: steps may start late
            self.started, self.started_at = now, done
            if not self.is_tty:  # the first plain line comes after one interval
                self._last_write = now
        self.done, self.total = done, total
        if self.quiet:
            return
        finished = total is not None and done >= total
        wait = BAR_INTERVAL_S if self.is_tty else self.interval
        if not finished and now - self._last_write < wait:
            return
        self._last_write = now
        if self.is_tty:
            self._write(f"\r{self.bar_text()}\x1b[K")
            self._bar_open = True
            if finished:
                self._end_bar()
        else:
            self._write(self.line_text() + "\n")
        self._written_done = done

    def close(self) -> None:
        """Show the last count (a step that stopped early, or had no known total) and end the bar's line."""
        if self.quiet or self.started is None:
            return
        if self._bar_open:
            self._write(f"\r{self.bar_text()}\x1b[K")
            self._end_bar()
        elif not self.is_tty and self._written_done != self.done:
            self._write(self.line_text() + "\n")
        self._written_done = self.done

    def _end_bar(self) -> None:
        self._write("\n")
        self._bar_open = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not end the run
            pass

    def _rate_text(self) -> str:
        fps = self.fps()
        return "" if fps is None else f"{fps:.1f} fps"

    def bar_text(self) -> str:
        """The terminal line (without the carriage return)."""
        done, total = self.done, self.total
        parts = [f"{self.label:<7s}"]
        if total:
            filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
            parts.append("[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]")
            parts.append(f"{done:>{len(str(total))}d}/{total} frames")
        else:
            parts.append(f"{done} frames")
        if rate := self._rate_text():
            parts.append(rate)
        if total:
            eta = eta_seconds(done, total, self.elapsed(), self.started_at)
            parts.append("done in " + format_duration(self.elapsed()) if done >= total
                         else "ETA " + format_duration(eta))
        return "  ".join(parts)

    def line_text(self) -> str:
        """One plain progress line (without the newline)."""
        done, total = self.done, self.total
        text = f"{self.label}: {done}/{total} frames" if total else f"{self.label}: {done} frames"
        if rate := self._rate_text():
            text += f", {rate}"
        if total:
            if done >= total:
                text += f", done in {format_duration(self.elapsed())}"
            else:
                text += f", ETA {format_duration(eta_seconds(done, total, self.elapsed(), self.started_at))}"
        return text
