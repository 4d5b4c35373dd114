"""Renders interrupted half-way: Ctrl-C (SIGINT) and SIGKILL, on the real command line.

What must hold:
    * SIGINT and SIGTERM: exit 130, one line on stderr, the input untouched, nothing under the output name
      and no temporary file left (the writer removes it on the way out).
    * SIGKILL: nothing can run on the way out, so the hidden temporary file
      (``.NAME.deltaface-tmp-XXXXXXXX.EXT``) stays beside the output; the final name never
      appears. A later run to the same output succeeds and removes that stale file (its writer's
      lock died with it), and nothing else: other files in the folder, and the temporary file of
      a render still running, are left as they were.

The render is caught mid-way by waiting for its temporary output to appear and grow, then
signalling; a render that finished first fails the test rather than passing it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugin.output import TEMP_MARKER
from plugin.video import VideoReader
from tests.plugin.media import pattern_image, write_clip
from tests.reliability.corpus import REPO, tree_digest

#: The clip: long enough that an FFV1 render takes over a second on the project machine
#: (about 170 fps at 640x360, after 2-3 s of start-up).
NUM_FRAMES, WIDTH, HEIGHT = 300, 640, 360
#: How long the temporary output must have been growing before the signal is sent.
SIGNAL_AFTER_S = 0.3
#: Longest wait for a render to reach its first frames or to end.
WAIT_S = 60.0


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    base = [pattern_image(i, WIDTH, HEIGHT) for i in range(10)]
    return write_clip(folder / "long.mp4", images=[base[i % 10] for i in range(NUM_FRAMES)],
                      codec_options={"crf": "30"})


def _start(*args: str | Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DELTAFACE_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "plugin", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if TEMP_MARKER in p.name)


def _signal_mid_render(proc: subprocess.Popen[str], folder: Path, sig: int) -> tuple[int, str]:
    """Wait until the render writes its temporary output, let it grow, send ``sig``."""
    deadline = time.monotonic() + WAIT_S
    while not any(p.stat().st_size > 0 for p in _temps(folder)):
        assert proc.poll() is None, f"render ended before writing: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, "render never started writing"
        time.sleep(0.02)
    time.sleep(SIGNAL_AFTER_S)
    assert proc.poll() is None, "the render finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=WAIT_S)
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_mid_render_leaves_nothing(long_clip: Path, tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "out.mkv"
    before = tree_digest(long_clip)
    proc = _start("render", long_clip, "-o", out, "--codec", "ffv1", "--quiet")
    rc, err = _signal_mid_render(proc, tmp_path, sig)
    assert rc == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == [], "the interrupted render left files"
    assert tree_digest(long_clip) == before


def test_kill_mid_render_then_render_again(long_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    bystander = tmp_path / "notes.txt"
    bystander.write_text("not deltaface's")
    before = tree_digest(long_clip)
    proc = _start("render", long_clip, "-o", out, "--codec", "ffv1", "--quiet")
    rc, _ = _signal_mid_render(proc, tmp_path, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert not out.exists()
    stale = _temps(tmp_path)
    assert len(stale) == 1 and stale[0].name.startswith(".out" + TEMP_MARKER), stale
    stale_digest = tree_digest(stale[0])
    assert tree_digest(long_clip) == before

    proc = _start("render", long_clip, "-o", out, "--codec", "ffv1", "--quiet")
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err
    with VideoReader(out) as reader:
        assert reader.info.num_frames == NUM_FRAMES and reader.info.complete
    assert _temps(tmp_path) == []  # the killed render's leftover is gone
    assert bystander.read_text() == "not deltaface's"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, bystander.name])
    assert tree_digest(long_clip) == before
    assert stale_digest  # it held data: a real half-written render was cleaned up


def test_a_running_renders_temporary_file_is_not_taken_for_stale(long_clip: Path, tmp_path: Path) -> None:
    """Two renders to one output name: the second must not delete the first's file mid-write."""
    from plugin.output import stale_temps

    out = tmp_path / "out.mkv"
    proc = _start("render", long_clip, "-o", out, "--codec", "ffv1", "--quiet")
    try:
        deadline = time.monotonic() + WAIT_S
        while not any(p.stat().st_size > 0 for p in _temps(tmp_path)):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "render never started writing"
            time.sleep(0.02)
        assert proc.poll() is None
        assert stale_temps(out) == []  # locked by the live render
    finally:
        proc.kill()
        proc.communicate(timeout=WAIT_S)
    assert [p.name for p in stale_temps(out)] == [p.name for p in _temps(tmp_path)]  # now it is stale


def test_ctrl_c_while_tracking_writes_no_cache(long_clip: Path, tmp_path: Path) -> None:
    # Tracking writes nothing until the analysis is complete; Ctrl-C while the landmarker runs
    # must leave the cache folder without a file and end with the one-line message.
    cache = tmp_path / "cache"
    proc = _start("track", long_clip, "--cache-dir", cache)
    assert proc.stderr is not None
    deadline = time.monotonic() + WAIT_S
    first = proc.stderr.readline()  # the first progress line: frames are being analysed
    assert first.startswith("track:") and time.monotonic() < deadline, first
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 130, first + rest
    lines = [line for line in rest.strip().splitlines() if not line.startswith("track:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in rest, rest
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []


STUCK_SCRIPT = """
import ctypes, signal, sys
import plugin.__main__ as entry
signal.signal(signal.SIGTERM, entry._terminate)
entry._start_interrupt_watchdog()
libc = ctypes.CDLL(None)
mutex = ctypes.create_string_buffer(64)
libc.pthread_mutex_init(mutex, None)
libc.pthread_mutex_lock(mutex)
print("ready", flush=True)
libc.pthread_mutex_lock(mutex)  # a native call that never returns (a deadlocked library)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_ends_the_process_even_when_a_native_call_hangs(sig: signal.Signals) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), DELTAFACE_FORCED_EXIT_S="1")
    proc = subprocess.Popen([sys.executable, "-c", STUCK_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # let the script enter the hanging call
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], err


HALF_BUILT_SCRIPT = """
import signal, sys
import plugin.__main__ as entry

class HalfBuilt:  # like a MediaPipe image whose constructor an interrupt cut short
    def __del__(self):
        raise AttributeError("'HalfBuilt' object has no attribute '_ptr'")

sys.unraisablehook = entry._unraisable
if sys.argv[1] == "interrupted":
    try:
        entry._terminate(signal.SIGINT, None)
    except KeyboardInterrupt:
        pass
HalfBuilt()
print("done", flush=True)
"""


@pytest.mark.parametrize("interrupted", [True, False], ids=["after an interrupt", "otherwise"])
def test_finalizer_noise_is_hidden_only_after_an_interrupt(interrupted: bool) -> None:
    # After Ctrl-C the user sees one line: an object the interrupt caught half-built may fail in
    # its finalizer ("Exception ignored in ..."), which is hidden. Without an interrupt, such a
    # failure is a bug and is shown as Python shows it.
    env = {k: v for k, v in os.environ.items() if k != "DELTAFACE_DEBUG"} | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", HALF_BUILT_SCRIPT, "interrupted" if interrupted else "no"],
                          capture_output=True, text=True, env=env, timeout=WAIT_S)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    assert ("Exception ignored" in proc.stderr) is not interrupted, proc.stderr
