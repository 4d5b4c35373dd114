"""The command line as users run it: real process, real exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugin.demo import MotionSettings, write_demo_clip
from plugin.provenance import read_provenance
from plugin.video import VideoReader

REPO = Path(__file__).resolve().parents[2]


def deltaface(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DELTAFACE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "plugin", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_clip(tmp_path_factory.mktemp("clip") / "demo.mp4", MotionSettings(num_frames=10))


def test_missing_input(tmp_path: Path) -> None:
    proc = deltaface("render", tmp_path / "nope.mp4", "-o", tmp_path / "out.mp4")
    assert_one_line_error(proc, "nope.mp4")
    assert list(tmp_path.iterdir()) == []


def test_text_file_named_mp4(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    before = bad.read_bytes()
    proc = deltaface("render", bad, "-o", tmp_path / "out.mp4")
    assert_one_line_error(proc, "notes.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]
    assert bad.read_bytes() == before


def test_unwritable_output_folder(clip: Path, tmp_path: Path) -> None:
    proc = deltaface("render", clip, "-o", tmp_path / "missing" / "out.mp4")
    assert_one_line_error(proc, "missing")
    assert not (tmp_path / "missing").exists()


def test_existing_output_needs_overwrite(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    proc = deltaface("render", clip, "-o", out)
    assert_one_line_error(proc, "out.mp4")
    assert out.read_bytes() == b"precious"
    proc = deltaface("render", clip, "-o", out, "--overwrite", "--quiet")
    assert proc.returncode == 0, proc.stderr
    with VideoReader(out) as reader:
        assert sum(1 for _ in reader) == 10


def test_frame_range_outside_clip_is_rejected_before_writing(clip: Path, tmp_path: Path) -> None:
    proc = deltaface("render", clip, "-o", tmp_path / "out.mp4", "--frames", "5-10")
    assert_one_line_error(proc, "5-10")
    assert list(tmp_path.iterdir()) == []


def test_pass_through_ffv1_is_bit_identical_with_provenance(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    proc = deltaface("render", clip, "-o", out, "--codec", "ffv1", "--frames", "2-4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    with VideoReader(clip) as a, VideoReader(out) as b:
        src, dst = list(a), list(b)
    assert [f.pts * f.time_base for f in src] == [f.pts * f.time_base for f in dst]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(src, dst, strict=True))
    tag = read_provenance(out)
    assert tag["tool"] == "deltaface" and tag["edited_ranges"] == []


def test_truncated_input_fails_unless_allowed(clip: Path, tmp_path: Path) -> None:
    # A Matroska file cut mid-stream (a copy interrupted halfway, say): its header promises
    # more than the file holds.
    src_frames = 10
    proc = deltaface("render", clip, "-o", tmp_path / "whole.mkv", "--codec", "h264", "--quiet")
    assert proc.returncode == 0, proc.stderr
    whole = (tmp_path / "whole.mkv").read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole[: int(len(whole) * 0.6)])
    proc = deltaface("render", cut, "-o", tmp_path / "out.mp4")
    assert proc.returncode == 2, proc.stderr
    assert "cut.mkv" in proc.stderr and "frame" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.mp4").exists()
    proc = deltaface("render", cut, "-o", tmp_path / "out.mp4", "--allow-truncated", "--quiet")
    assert proc.returncode == 0, proc.stderr
    with VideoReader(tmp_path / "out.mp4") as reader:
        n = sum(1 for _ in reader)
    assert 0 < n < src_frames


def test_track_writes_analysis_json_and_preview(clip: Path, tmp_path: Path) -> None:
    import json

    preview = tmp_path / "preview.mp4"
    analysis_file = tmp_path / "a.npz"
    proc = deltaface("track", clip, "--json", "--quiet", "--cache-dir", tmp_path / "cache",
                     "--preview", preview, "-o", analysis_file)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["frames"] == 10 and len(summary["tracks"]) == 1
    assert summary["tracks"][0]["frames"] == 10
    assert analysis_file.exists()
    with VideoReader(clip) as a, VideoReader(preview) as b:
        src, drawn = list(a), list(b)
    assert len(drawn) == len(src)
    # the preview draws on the face: frames differ from the input there
    assert np.abs(drawn[0].image.astype(int) - src[0].image.astype(int)).max() > 100
    # the second run loads the cached analysis
    proc = deltaface("track", clip, "--json", "--quiet", "--cache-dir", tmp_path / "cache")
    assert proc.returncode == 0 and json.loads(proc.stdout)["from_cache"] is True


def test_track_on_missing_input_is_one_line(tmp_path: Path) -> None:
    proc = deltaface("track", tmp_path / "gone.mov", "--cache-dir", tmp_path)
    assert_one_line_error(proc, "gone.mov")


def test_edit_touches_only_the_named_frames_and_tags_them(clip: Path, tmp_path: Path) -> None:
    import json

    out = tmp_path / "edited.mp4"
    proc = deltaface("edit", clip, "-o", out, "--codec", "ffv1", "--face", "0",
                     "--delta", "blink_left=1@4-5~2", "--cache-dir", tmp_path / "cache", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["edited_ranges_by_face"] == {"0": [[3, 6]]}
    with VideoReader(clip) as a, VideoReader(out) as b:
        src, dst = list(a), list(b)
    same = [bool(np.array_equal(x.image, y.image)) for x, y in zip(src, dst, strict=True)]
    assert same == [True, True, True, False, False, False, False, True, True, True]
    tag = read_provenance(out)
    assert tag["faces_edited"] is True and tag["edited_ranges"] == [[3, 6]]
    assert tag["edited_ranges_by_face"] == {"0": [[3, 6]]}


def test_edit_rejects_unknown_face_and_bad_specs_before_writing(clip: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "out.mp4"
    proc = deltaface("edit", clip, "-o", out, "--face", "7", "--delta", "smile=0.5@1-3", "--cache-dir", cache,
                     "--quiet")
    assert_one_line_error(proc, "7")
    proc = deltaface("edit", clip, "-o", out, "--face", "0", "--delta", "wink=0.5@1-3", "--cache-dir", cache)
    assert_one_line_error(proc, "wink")
    proc = deltaface("edit", clip, "-o", out, "--delta", "wink=0.5@1-3", "--cache-dir", tmp_path / "fresh")
    assert_one_line_error(proc, "wink")  # without --face too, and before any tracking
    assert not (tmp_path / "fresh").exists()
    proc = deltaface("edit", clip, "-o", out, "--face", "0", "--delta", "smile=0.5@8-30", "--cache-dir", cache)
    assert_one_line_error(proc, "30")
    assert not out.exists()


def test_edit_without_face_takes_the_only_face_or_names_them(clip: Path, tmp_path: Path) -> None:
    import json

    from tests.plugin.media import write_clip

    out = tmp_path / "one.mkv"
    proc = deltaface("edit", clip, "-o", out, "--codec", "ffv1", "--delta", "smile=0.5@4-5~2",
                     "--cache-dir", tmp_path / "cache", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["edited_ranges_by_face"] == {"0": [[3, 6]]}
    with VideoReader(clip) as reader:
        frames = [f.image for f in reader][:4]
    pair = write_clip(tmp_path / "pair.mkv", codec="ffv1", pix_fmt="bgr0",
                      images=[np.concatenate([im, im[:, ::-1]], axis=1) for im in frames])
    proc = deltaface("edit", pair, "-o", tmp_path / "two.mkv", "--codec", "ffv1", "--delta", "smile=0.5",
                     "--cache-dir", tmp_path / "cache", "--quiet")
    assert_one_line_error(proc, "--face", "faces 0, 1")
    assert not (tmp_path / "two.mkv").exists()


@pytest.mark.parametrize("command", ["edit", "edit_any_face", "restore", "track"])
def test_an_output_the_codec_cannot_be_written_to_is_refused_before_tracking(command: str, clip: Path,
                                                                             tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "out.webm"
    args = {"edit": ("edit", clip, "-o", out, "--face", "0", "--delta", "smile=0.5@1-3"),
            "edit_any_face": ("edit", clip, "-o", out, "--delta", "smile=0.5@1-3"),
            "restore": ("restore", "--plate", clip, "--swapped", clip, "-o", out),
            "track": ("track", clip, "--preview", out)}[command]
    proc = deltaface(*args, "--cache-dir", cache, "--quiet")
    assert_one_line_error(proc, str(out), "h264", ".mp4")
    assert not out.exists()
    assert not cache.exists() or not any(cache.iterdir())  # nothing was tracked


def test_blend_choices_match_the_blend_methods() -> None:
    from compositing.blend import BLEND_METHODS, BlendConfig
    from plugin.cli import BLEND_CHOICES

    assert tuple(BLEND_CHOICES) == tuple(BLEND_METHODS)
    assert BlendConfig().method == BLEND_CHOICES[0]


def test_device_choices_match_the_render_devices() -> None:
    from plugin.cli import DEVICE_CHOICES
    from plugin.editing import DEVICES, RenderConfig

    assert tuple(DEVICE_CHOICES) == tuple(DEVICES)
    assert RenderConfig().device == DEVICE_CHOICES[0]
