"""``deltaface`` entry point: the only place that turns errors into exit codes.

Exit codes: 0 success; 2 bad input, bad settings or an output that cannot be written (one line on
stderr naming the file or frame, never a traceback); 130 interrupted; 1 an internal error (one
line, with the traceback only when DELTAFACE_DEBUG=1).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _quiet_native_stderr() -> None:
    """Send native libraries' log lines (MediaPipe, LiteRT, FFmpeg) to /dev/null.

    They write to file descriptor 2 directly, not through Python. deltaface's own messages go to
    a duplicate of the original stderr, so they still reach the terminal. DELTAFACE_DEBUG=1 keeps
    everything.
    """
    try:
        sys.stderr.flush()
        original = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    except OSError:
        pass


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # MediaPipe's C++ side logs through glog to stderr; keep warnings and info off the terminal
    # unless the user asked for them. Must be set before mediapipe is imported.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("DELTAFACE_DEBUG") != "1":
        _quiet_native_stderr()
    # SIGTERM (a job scheduler, `kill`) ends a run like Ctrl-C: outputs under their temporary
    # names are removed and the final names are never written.
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except (ValueError, OSError):  # not the main thread, or no such signal here
        pass
    # Library code only logs; warnings reach the user as one "deltaface:" line each.
    logging.basicConfig(format="deltaface: %(message)s", level=logging.WARNING, stream=sys.stderr)
    # Imported here so that even an import failure ends in one line rather than a traceback.
    try:
        from plugin.cli import run
        from tracking.errors import DeltafaceError
    except Exception as exc:  # noqa: BLE001 - the entry point reports anything on one line
        print(f"deltaface: cannot start: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except DeltafaceError as exc:
        print(f"deltaface: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("deltaface: interrupted; nothing was written under the output name", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback on request
        if os.environ.get("DELTAFACE_DEBUG") == "1":
            traceback.print_exc()
        print(
            f"deltaface: internal error: {type(exc).__name__}: {exc} "
            "(set DELTAFACE_DEBUG=1 for a traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
