"""A full disk while writing: a clear one-line error, nothing under the output name, nothing lost.

The disk is "full" for the render process through RLIMIT_FSIZE (a file-size limit, set in the
child only): a write past it fails with EFBIG as it would with ENOSPC on a full filesystem, and
Python ignores the SIGXFSZ that comes with it. The input and an existing output must survive.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from plugin.output import TEMP_MARKER
from tests.plugin.media import pattern_image, write_clip
from tests.reliability.corpus import REPO, tree_digest

#: The file-size limit: far below what a video render writes (60 FFV1 frames of 320x240, ~7 MB),
#: and, for PNG folders (the limit is per file), below one frame's PNG.
LIMIT_BYTES = {"ffv1": 256 * 1024, "h264": 256 * 1024, "png": 4 * 1024}
NUM_FRAMES = 60


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("full")
    return write_clip(folder / "clip.mp4", images=[pattern_image(i, 320, 240) for i in range(NUM_FRAMES)])


def _limited(*args: str | Path, limit_bytes: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DELTAFACE_DEBUG", None)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "plugin", *map(str, args)], capture_output=True, text=True,
                          env=env, preexec_fn=limit, timeout=120, check=False)


@pytest.mark.parametrize("codec, name", [("ffv1", "out.mkv"), ("png", "frames"), ("h264", "out.mp4")])
def test_disk_full_mid_render_is_one_line_and_leaves_nothing(clip: Path, tmp_path: Path, codec: str, name: str) -> None:
    before = tree_digest(clip)
    out = tmp_path / name
    extra = ["--crf", "0"] if codec == "h264" else []
    proc = _limited("render", clip, "-o", out, "--codec", codec, *extra, limit_bytes=LIMIT_BYTES[codec])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(out) in lines[0] or out.name in lines[0], lines[0]
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if TEMP_MARKER in p.name] == []
    assert tree_digest(clip) == before


def test_disk_full_keeps_the_previous_output(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    first = subprocess.run([sys.executable, "-m", "plugin", "render", clip, "-o", out, "--codec", "ffv1",
                            "--quiet"], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
                           timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    kept = tree_digest(out)
    proc = _limited("render", clip, "-o", out, "--codec", "ffv1", "--overwrite", limit_bytes=LIMIT_BYTES["ffv1"])
    assert proc.returncode == 2, proc.stderr
    assert tree_digest(out) == kept


def test_disk_full_writing_an_analysis_file(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "analysis.npz"
    proc = _limited("track", clip, "-o", out, "--cache-dir", tmp_path / "cache", "--quiet", limit_bytes=256)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if TEMP_MARKER in p.name] == []
