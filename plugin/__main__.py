"""``deltaface`` entry point: the only place that turns errors into exit codes.

Exit codes: 0 success; 2 bad input, bad settings or an output that cannot be written (one line on
stderr naming the file or frame, never a traceback); 130 interrupted; 1 an internal error (one
line, with the traceback only when DELTAFACE_DEBUG=1).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
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


#: Set once Ctrl-C or SIGTERM arrived: from then on, finalizers of objects the interrupt caught
#: half-built (a MediaPipe image whose constructor it cut short) fail noisily and harmlessly, and
#: their "Exception ignored in ..." lines are kept off the terminal (see _unraisable).
_interrupted = threading.Event()


def _terminate(signum: int, frame: object) -> None:
    """SIGINT and SIGTERM: end the run as Ctrl-C does (KeyboardInterrupt), noting the interrupt."""
    _interrupted.set()
    raise KeyboardInterrupt


def _unraisable(args: "sys.UnraisableHookArgs") -> None:
    if _interrupted.is_set() and os.environ.get("DELTAFACE_DEBUG") != "1":
        return
    sys.__unraisablehook__(args)


#: After Ctrl-C or SIGTERM, how long the normal clean-up may take before the process is ended
#: (``DELTAFACE_FORCED_EXIT_S`` overrides it).
FORCED_EXIT_AFTER_S = float(os.environ.get("DELTAFACE_FORCED_EXIT_S", "15"))
_interrupt_reported = threading.Event()


def _start_interrupt_watchdog() -> None:
    """End the process if an interrupt's clean-up hangs (a native library stuck in a call).

    Python runs signal handlers only when the main thread returns to the interpreter; a thread
    woken by the signal's wake-up byte does not depend on that. Outputs are only renamed to their
    final names at the very end of a run, so a forced exit leaves at most a hidden temporary file.
    """
    try:
        reader, writer = socket.socketpair()
        reader.setblocking(True)
        writer.setblocking(False)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (OSError, ValueError):
        return

    def watch() -> None:
        while True:
            data = reader.recv(16)
            if any(b in (signal.SIGINT, signal.SIGTERM) for b in data):
                break
        if _interrupt_reported.wait(FORCED_EXIT_AFTER_S):
            # the message is out; give the normal exit the same time again
            threading.Event().wait(FORCED_EXIT_AFTER_S)
        else:
            _report_interrupt()
        os._exit(EXIT_INTERRUPTED)

    threading.Thread(target=watch, name="deltaface-interrupt-watchdog", daemon=True).start()
    _wakeup_sockets.extend((reader, writer))


_wakeup_sockets: list[socket.socket] = []  # kept open for the life of the process


def _report_interrupt() -> None:
    if not _interrupt_reported.is_set():
        _interrupt_reported.set()
        print("deltaface: interrupted; nothing was written under the output name", file=sys.stderr)
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    # MediaPipe's C++ side logs through glog to stderr; keep warnings and info off the terminal
    # unless the user asked for them. Must be set before mediapipe is imported.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("DELTAFACE_DEBUG") != "1":
        _quiet_native_stderr()
    # SIGTERM (a job scheduler, `kill`) ends a run like Ctrl-C: outputs under their temporary
    # names are removed and the final names are never written.
    sys.unraisablehook = _unraisable
    try:
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _terminate)
        _start_interrupt_watchdog()
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
        _report_interrupt()
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
