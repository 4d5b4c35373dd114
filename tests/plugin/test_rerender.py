"""Re-render of a project's frames A-B into its previous output, on real faces.

The clip is the PC-AVS fixture's talking head (downscaled to 112x112 so that tracking and
rendering stay fast), played forward and back to 300 frames. The project smiles on four frames;
the changed project smiles harder there, and ``--frames`` re-renders a 10-frame range around them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from plugin.cli import run
from plugin.project import load_project, render_project
from plugin.provenance import read_provenance
from plugin.smartrender import read_layout
from plugin.video import VideoReader
from tests.plugin.media import write_clip
from tracking.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / ".." / "shared" / "fixtures"
SOURCE = FIXTURES / "pcavs_audio_source_00015.mp4"
NUM_FRAMES = 300
EDITED = (151, 152)
RANGE = (148, 157)
#: A file's modification time set before the re-render; any rewrite moves it to now.
OLD_MTIME = 1_000_000_000


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SOURCE.is_file():
        pytest.skip(f"fixture clips not found in {FIXTURES}")
    folder = tmp_path_factory.mktemp("project")
    with VideoReader(SOURCE) as reader:
        images = [f.image[::2, ::2].copy() for f in reader]
    images = (images + images[::-1])[:NUM_FRAMES]
    write_clip(folder / "clip.mp4", images=images, rate=25, audio_seconds=NUM_FRAMES / 25,
               codec_options={"preset": "ultrafast", "crf": "14"})
    return folder


def project_text(strength: float, codec: str, out: str, face: int = 0) -> str:
    return f"""version = 1
input = "clip.mp4"

[output]
path = "{out}"
codec = "{codec}"
preset = "veryfast"

[[edit]]
face = {face}
delta = "smile"
strength = {strength}
frames = "{EDITED[0]}-{EDITED[1]}"
ramp = 0
"""


def write_project(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def files_state(out: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(out.iterdir())}


def test_png_rerender_rewrites_exactly_the_range(folder: Path) -> None:
    cache = folder / "cache"
    out = folder / "png_out"
    p1 = load_project(write_project(folder, "png.toml", project_text(0.5, "png", "png_out")))
    first = render_project(p1, cache_dir=cache)
    assert first.mode == "full" and first.edited_ranges_by_face == {0: [list(EDITED)]}
    for f in out.iterdir():
        os.utime(f, (OLD_MTIME, OLD_MTIME))
    before = files_state(out)

    p2 = load_project(write_project(folder, "png.toml", project_text(0.9, "png", "png_out")))
    second = render_project(p2, frames=f"{RANGE[0]}-{RANGE[1]}", cache_dir=cache)
    assert second.mode == "frames" and second.analysis_from_cache
    assert second.details["files_written"] == RANGE[1] - RANGE[0] + 1
    after = files_state(out)
    range_names = {f"{i:06d}.png" for i in range(RANGE[0], RANGE[1] + 1)}
    changed = {n for n in after if after[n] != before[n]}
    assert changed == range_names | {"provenance.json"}, sorted(changed)
    assert sorted(after) == sorted(before), "files appeared or vanished"
    edited_names = {f"{i:06d}.png" for i in range(EDITED[0], EDITED[1] + 1)}
    assert all(after[n][0] != before[n][0] for n in edited_names), "a stronger smile left a frame as it was"
    assert all(after[n][0] == before[n][0] for n in range_names - edited_names), "an unedited frame changed"

    # the folder is now what a full render of the changed project writes
    full = render_project(p2, output=folder / "png_full", cache_dir=cache)
    assert full.mode == "full"
    ref = files_state(folder / "png_full")
    assert all(after[n][0] == ref[n][0] for n in after if n.endswith(".png"))
    tag, ref_tag = read_provenance(out), read_provenance(folder / "png_full")
    assert tag["edited_ranges"] == ref_tag["edited_ranges"] == [list(EDITED)]
    assert tag["edited_ranges_by_face"] == ref_tag["edited_ranges_by_face"]
    assert tag["rerendered_ranges"] == [list(RANGE)]


def test_unknown_face_or_range_is_refused_before_anything_is_written(folder: Path) -> None:
    with pytest.raises(ConfigError, match="no face with id 7"):
        render_project(load_project(write_project(folder, "bad.toml", project_text(0.5, "png", "bad_out", face=7))),
                       cache_dir=folder / "cache")
    assert not (folder / "bad_out").exists()
    p = load_project(write_project(folder, "bad.toml", project_text(0.5, "png", "bad_out")))
    with pytest.raises(ConfigError, match="outside the clip"):
        render_project(p, frames="290-300", cache_dir=folder / "cache")
    assert not (folder / "bad_out").exists()


def test_h264_rerender_from_the_command_line_copies_every_other_gop(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = folder / "cache"
    out = folder / "h264_out.mp4"
    render_project(load_project(write_project(folder, "h264.toml", project_text(0.5, "h264", "h264_out.mp4"))),
                   cache_dir=cache)
    previous = folder / "h264_prev.mp4"
    previous.write_bytes(out.read_bytes())
    project = write_project(folder, "h264.toml", project_text(0.9, "h264", "h264_out.mp4"))
    assert run(["render", str(project), "--frames", "00:00:05:23-00:00:06:07", "--cache-dir", str(cache),
                "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "frames" and summary["note"] == ""  # 5 s 23 f = frame 148, 6 s 7 f = 157

    layout = read_layout(previous)
    hit = [g for g, (a, b) in enumerate(layout.gop_frames) if a <= RANGE[1] and b >= RANGE[0]]
    inside = {j for g in hit for j in range(*layout.gops[g])}
    assert summary["details"]["packets_reencoded"] == len(inside) < NUM_FRAMES // 2

    def packets(path: Path) -> list[tuple[int, int, bytes]]:
        with av.open(str(path)) as c:
            return [(p.pts, p.dts, bytes(p)) for p in c.demux(c.streams.video[0]) if p.size]

    old, new = packets(previous), packets(out)
    assert [x for j, x in enumerate(old) if j not in inside] == [x for j, x in enumerate(new) if j not in inside]
    with VideoReader(previous) as a, VideoReader(out) as b:
        fa, fb = list(a), list(b)
    assert [f.pts for f in fa] == [f.pts for f in fb] and len(fb) == NUM_FRAMES
    span = range(layout.gop_frames[hit[0]][0], layout.gop_frames[hit[-1]][1] + 1)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(fa, fb) if x.index not in span)
    assert read_provenance(out)["edited_ranges"] == [list(EDITED)]
