"""Editor timelines (.otio, CMX 3600 .edl) mapped onto frames of the input, frame-exactly."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from plugin.cli import run
from plugin.timeline import (
    expand_delta_specs,
    frames_of,
    input_start_timecode,
    map_timeline,
    read_timeline,
    resolve_ref,
)
from tests.plugin.media import write_clip
from tracking.errors import ConfigError

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange
HOUR_S = 3600.0


def expected_frames(start: int, count: int, timeline_rate: int, fps: int) -> tuple[int, int]:
    """Frames whose start lies in [start, start + count) timeline frames, by integer arithmetic."""
    first = -(-start * fps // timeline_rate)  # ceil(start / rate * fps)
    last = -(-(start + count) * fps // timeline_rate) - 1
    return first, last


def write_otio(path: Path) -> Path:
    """A 24 fps timeline starting at 01:00:00:00: a 12-frame gap, clip A (source 100-147), clip B."""
    tl = otio.schema.Timeline(name="cut", global_start_time=RT(86400, 24))
    track = otio.schema.Track(name="V1")
    tl.tracks.append(track)
    track.append(otio.schema.Gap(source_range=TR(RT(0, 24), RT(12, 24))))
    a = otio.schema.Clip(name="shot_a", source_range=TR(RT(100, 24), RT(48, 24)))
    a.markers.append(otio.schema.Marker(name="smile", marked_range=TR(RT(110, 24), RT(10, 24))))
    track.append(a)
    track.append(otio.schema.Clip(name="shot_b", source_range=TR(RT(0, 24), RT(24, 24))))
    track.markers.append(otio.schema.Marker(name="wink", marked_range=TR(RT(70, 24), RT(0, 24))))
    tl.tracks.markers.append(otio.schema.Marker(name="late", marked_range=TR(RT(500, 24), RT(24, 24))))
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_frames_of_rounds_by_frame_start() -> None:
    # 24 fps frames 10-19 (0.4167-0.8333 s) at 30 fps: frames 13-24
    assert frames_of(10 / 24, 20 / 24, 30) == (13, 24)
    for start, count in ((0, 24), (1, 1), (7, 5), (23, 2)):
        assert frames_of(start / 24, (start + count) / 24, 30) == expected_frames(start, count, 24, 30)
    assert frames_of(1.0, 2.0, 25) == (25, 49)  # same rate boundaries are exact despite float times
    assert frames_of(0.5, 0.5, 30, zero_length=True) == (15, 15)
    # a range shorter than a frame and holding no frame start: the frame showing at its start
    assert frames_of(0.01, 0.02, 30) == (0, 0)


def test_otio_markers_and_clips_map_frame_exactly_with_a_rate_mismatch(tmp_path: Path) -> None:
    tl = read_timeline(write_otio(tmp_path / "cut.otio"))
    assert tl.rate == 24 and tl.record_origin_s == pytest.approx(HOUR_S)
    mapped = {m.item.ref: m for m in map_timeline(tl, 30.0, 150)}  # no start timecode on the input
    # record time: the timeline's first frame is the input's frame 0
    assert (mapped["clip:shot_a"].first_frame, mapped["clip:shot_a"].last_frame) == expected_frames(12, 48, 24, 30)
    assert (mapped["clip:shot_b"].first_frame, mapped["clip:shot_b"].last_frame) == expected_frames(60, 24, 24, 30)
    # the clip's marker is in its source time: 10 frames into the clip, which starts at record 12
    assert (mapped["marker:smile"].first_frame, mapped["marker:smile"].last_frame) == expected_frames(22, 10, 24, 30)
    # a zero-length track marker at 24 fps frame 70 (2.9167 s): the 30 fps frame showing then
    assert mapped["marker:wink"].first_frame == mapped["marker:wink"].last_frame == math.floor(70 * 30 / 24)
    assert mapped["marker:late"].problem is not None and "outside" in mapped["marker:late"].problem
    # source time: the input is shot_a's media, frame 0 at source 0
    source = {m.item.ref: m for m in map_timeline(tl, 24.0, 200, space="source")}
    assert (source["clip:shot_a"].first_frame, source["clip:shot_a"].last_frame) == (100, 147)
    assert (source["marker:smile"].first_frame, source["marker:smile"].last_frame) == (110, 119)
    assert "no source time" in (source["marker:wink"].problem or "")


def test_input_start_timecode_shifts_record_time(tmp_path: Path) -> None:
    clip = tmp_path / "tc.mov"
    with av.open(str(clip), "w", format="mov") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.metadata["timecode"] = "01:00:00:12"  # the input starts half a second into the timeline
        for i in range(80):
            f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 24)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    assert input_start_timecode(clip) == "01:00:00:12"
    tl = read_timeline(write_otio(tmp_path / "cut.otio"))
    mapped = map_timeline(tl, 24.0, 80, start_timecode="01:00:00:12")
    assert resolve_ref(mapped, "clip:shot_a", "cut.otio") == (0, 47)  # record 12-59 minus 12


def test_edl_locators_are_record_timecodes(tmp_path: Path) -> None:
    edl = tmp_path / "cut.edl"
    edl.write_text(
        "TITLE: test cut\nFCM: NON-DROP FRAME\n\n"
        "001  A003C012 V     C        01:00:10:00 01:00:12:00 01:00:00:00 01:00:02:00\n"
        "* FROM CLIP NAME: shot_a.mov\n"
        "* LOC: 01:00:00:12 RED     smile_here\n\n"
        "002  B001     V     C        00:00:05:00 00:00:06:00 01:00:02:00 01:00:03:00\n"
        "* FROM CLIP NAME: shot_b.mov\n")
    tl = read_timeline(edl, edl_rate=24)
    assert tl.record_origin_s == pytest.approx(HOUR_S)
    mapped = map_timeline(tl, 30.0, 100)
    assert resolve_ref(mapped, "marker:smile_here", edl) == (15, 15)  # 12 frames at 24 fps = 0.5 s
    assert resolve_ref(mapped, "clip:shot_a.mov", edl) == expected_frames(0, 48, 24, 30)
    assert resolve_ref(mapped, "clip:shot_b.mov", edl) == expected_frames(48, 24, 24, 30)
    source = map_timeline(tl, 24.0, 200, space="source")
    assert resolve_ref(source, "clip:shot_b.mov", edl) == (120, 143)  # 00:00:05:00-00:00:05:23
    # the locator sits 12 frames into event 001, whose source starts at 01:00:10:00
    src = {m.item.ref: m for m in source}["marker:smile_here"]
    assert src.first_frame == (3600 + 10) * 24 + 12 and src.problem is not None  # outside a 200-frame clip


def test_delta_specs_with_references_become_frame_ranges(tmp_path: Path) -> None:
    path = write_otio(tmp_path / "cut.otio")
    mapped = map_timeline(read_timeline(path), 30.0, 150)
    a, b = expected_frames(22, 10, 24, 30)
    out = expand_delta_specs(["smile=0.5@marker:smile", "blink_left=1@clip:shot_b~0", "jaw_open=0.2@3-5"], mapped, path)
    c, d = expected_frames(60, 24, 24, 30)
    assert out == [f"smile=0.5@{a}-{b}", f"blink_left=1@{c}-{d}~0", "jaw_open=0.2@3-5"]
    with pytest.raises(ConfigError, match=r"cut\.otio: no marker named 'nope'; markers in this timeline: .*'smile'"):
        expand_delta_specs(["smile=0.5@marker:nope"], mapped, path)
    with pytest.raises(ConfigError, match=r"cut\.otio: marker 'late' maps to frames .* outside"):
        expand_delta_specs(["smile=0.5@marker:late"], mapped, path)
    with pytest.raises(ConfigError, match="needs --timeline"):
        expand_delta_specs(["smile=0.5@marker:smile"], None, None)


def test_bad_timeline_files_are_one_line_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "broken.otio"
    bad.write_text("{ not json")
    with pytest.raises(ConfigError, match=r"broken\.otio: cannot read the timeline") as exc:
        read_timeline(bad)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"missing\.otio: timeline file does not exist"):
        read_timeline(tmp_path / "missing.otio")
    with pytest.raises(ConfigError, match=r"cut\.xml: a timeline must be"):
        read_timeline(tmp_path / "cut.xml")
    garbage = tmp_path / "garbage.edl"
    garbage.write_bytes(b"\xff\xfe\x00not an edl at all 99:99\n001 x y z\n")
    with pytest.raises(ConfigError, match=r"garbage\.edl"):
        read_timeline(garbage)


def test_cli_timeline_listing_and_exit_2_on_a_range_outside_the_clip(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = write_clip(tmp_path / "in.mp4", num_frames=40, rate=30, time_base=Fraction(1, 30))
    cut = write_otio(tmp_path / "cut.otio")
    assert run(["timeline", str(cut), "--input", str(clip), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    items = {i["ref"]: i for i in listing["items"]}
    assert items["marker:smile"]["frames"] == list(expected_frames(22, 10, 24, 30))
    assert items["clip:shot_a"]["problem"] is not None  # 12-59 at 24 fps runs past the 40 frames
    # the edit refuses before tracking anything: one line naming the file, exit 2
    with pytest.raises(ConfigError, match=r"cut\.otio: clip 'shot_a' maps to frames 15-74, outside") as exc:
        run(["edit", str(clip), "-o", str(tmp_path / "out.mp4"), "--face", "0",
             "--timeline", str(cut), "--delta", "smile=0.5@clip:shot_a"])
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"none\.edl: timeline file does not exist"):
        run(["edit", str(clip), "-o", str(tmp_path / "out.mp4"), "--face", "0",
             "--timeline", str(tmp_path / "none.edl"), "--delta", "smile=0.5@marker:x"])
    proc = subprocess.run([sys.executable, "-m", "plugin", "timeline", str(tmp_path / "none.otio"), "--input", str(clip)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "none.otio" in proc.stderr
    assert not (tmp_path / "out.mp4").exists()
