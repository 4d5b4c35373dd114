"""``render --resume``: an image-sequence render killed mid-way continues from its last complete frame.

A killed render leaves its hidden temporary folder beside the output. Resuming decodes the last
files written, writes a damaged one again, keeps every complete file (its modification time does
not move) and ends with exactly the folder an uninterrupted render writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugin.cli import run
from plugin.output import TEMP_MARKER
from plugin.pipeline import RenderJob, run_render
from plugin.provenance import read_provenance
from plugin.writer import OutputConfig
from tests.plugin.media import write_clip
from tracking.errors import ConfigError, OutputError

REPO = Path(__file__).resolve().parents[2]
NUM_FRAMES = 40
#: Modification time given to the files "left by the killed run"; a rewrite moves it to now.
OLD_MTIME = 1_000_000_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=NUM_FRAMES)


@pytest.fixture(scope="module")
def reference(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted render."""
    out = tmp_path_factory.mktemp("ref") / "ref"
    run_render(RenderJob(clip, out, OutputConfig(codec="png")))
    return out


def killed_state(reference: Path, folder: Path, complete: int, truncated: bool) -> Path:
    """The temporary folder a render killed after ``complete`` frames (and maybe half of the next) leaves."""
    temp = folder / f".out{TEMP_MARKER}0123abcd"
    temp.mkdir()
    for i in range(complete + (1 if truncated else 0)):
        shutil.copyfile(reference / f"{i:06d}.png", temp / f"{i:06d}.png")
    if truncated:
        last = temp / f"{complete:06d}.png"
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    for p in temp.iterdir():
        os.utime(p, (OLD_MTIME, OLD_MTIME))
    return temp


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".png"}


@pytest.mark.parametrize("truncated", [True, False])
def test_resume_keeps_complete_frames_and_rewrites_a_truncated_one(
        clip: Path, reference: Path, tmp_path: Path, truncated: bool, capsys: pytest.CaptureFixture[str]) -> None:
    complete = 25
    temp = killed_state(reference, tmp_path, complete, truncated)
    assert run(["render", str(clip), "-o", str(tmp_path / "out"), "--codec", "png", "--resume", "--quiet"]) == 0
    out = tmp_path / "out"
    assert not temp.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert contents(out) == contents(reference)
    kept = [i for i in range(NUM_FRAMES) if (out / f"{i:06d}.png").stat().st_mtime == OLD_MTIME]
    assert kept == list(range(complete)), kept
    tag = read_provenance(out)
    assert tag is not None and tag["tool"] == "deltaface"


def test_resume_refuses_a_folder_that_is_not_this_render(clip: Path, reference: Path, tmp_path: Path) -> None:
    temp = killed_state(reference, tmp_path, 5, False)
    (temp / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt"):
        run(["render", str(clip), "-o", str(tmp_path / "out"), "--codec", "png", "--resume", "--quiet"])
    assert (temp / "notes.txt").read_text() == "mine" and not (tmp_path / "out").exists()


def test_resume_is_for_image_sequences_only(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PNG"):
        run(["render", str(clip), "-o", str(tmp_path / "out.mp4"), "--resume", "--quiet"])


def test_resume_without_an_interrupted_render_renders_everything(clip: Path, reference: Path, tmp_path: Path) -> None:
    assert run(["render", str(clip), "-o", str(tmp_path / "out"), "--codec", "png", "--resume", "--quiet"]) == 0
    assert contents(tmp_path / "out") == contents(reference)


@pytest.mark.slow
def test_resume_after_a_real_kill(tmp_path: Path) -> None:
    """A real render killed with SIGKILL once it has written some frames, then resumed."""
    n = 600
    clip = write_clip(tmp_path / "long.mp4", num_frames=n, width=320, height=240)
    ref = tmp_path / "ref"
    run_render(RenderJob(clip, ref, OutputConfig(codec="png")))
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "plugin", "render", str(clip), "-o", str(work / "out"),
                             "--codec", "png", "--quiet"], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    temp = None
    while time.monotonic() < deadline:
        temps = [p for p in work.iterdir() if TEMP_MARKER in p.name]
        if temps and len(list(temps[0].iterdir())) >= 100:
            temp = temps[0]
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert temp is not None and not (work / "out").exists()
    left = sorted(temp.iterdir())
    assert 100 <= len(left) < n, len(left)
    for p in left:
        os.utime(p, (OLD_MTIME, OLD_MTIME))
    assert run(["render", str(clip), "-o", str(work / "out"), "--codec", "png", "--resume", "--quiet"]) == 0
    out = work / "out"
    assert contents(out) == contents(ref)
    kept = sum((out / p.name).stat().st_mtime == OLD_MTIME for p in left)
    assert kept >= len(left) - 1, (kept, len(left))  # at most the file being written when killed
