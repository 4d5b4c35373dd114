"""Smart re-render of H.264 outputs: only the GOPs holding changed frames are re-encoded, every other
packet is the previous render's, byte for byte; refusals say why; nothing is half-written."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest

from plugin.pipeline import RenderJob, run_render
from plugin.provenance import build_provenance, read_provenance
from plugin.smartrender import NotStitchable, read_layout, smart_rerender, splice_provenance
from plugin.video import probe
from plugin.writer import OutputConfig, keyframe_interval
from tests.plugin.media import write_clip
from tracking.frame import Frame

NUM_FRAMES = 300
FPS = 25
#: x264 veryfast uses B-frames (reordering), unlike ultrafast: the stitch must keep their timing.
CONFIG = OutputConfig(preset="veryfast", crf=18)
#: A re-encoded frame's mean absolute error against what was asked may exceed the same frame's in a
#: render in one pass by this factor plus slack (8-bit levels): the same encoder on the same frames,
#: only rate control's look-ahead across the GOP boundary differs.
REENCODE_RATIO = 1.25
REENCODE_SLACK = 0.5


class Invert:
    """A render stage that inverts the frames in ``frames`` (latency 0, stateless)."""

    latency = 0

    def __init__(self, frames: range, fail_at: int | None = None) -> None:
        self.frames, self.fail_at = frames, fail_at

    def push(self, frame: Frame) -> list[Frame]:
        if frame.index == self.fail_at:
            raise RuntimeError(f"stage failed at frame {frame.index}")
        if frame.index not in self.frames:
            return [frame]
        return [Frame(frame.index, frame.pts, frame.time_base, 255 - frame.image)]

    def flush(self) -> list[Frame]:
        return []

    def reset(self) -> None:
        pass


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("src") / "clip.mp4", num_frames=NUM_FRAMES, rate=FPS,
                      audio_seconds=NUM_FRAMES / FPS)


def render(clip: Path, out: Path, stages: Sequence[Invert] = (), config: OutputConfig = CONFIG) -> Path:
    ranges = [(s.frames.start, s.frames.stop - 1) for s in stages]
    run_render(RenderJob(clip, out, config), list(stages), edited_ranges=ranges, edited_by_face={0: ranges})
    return out


@pytest.fixture(scope="module")
def previous(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous render: frames 20-29 inverted."""
    return render(clip, tmp_path_factory.mktemp("prev") / "prev.mp4", [Invert(range(20, 30))])


def packets(path: Path, kind: str = "video") -> list[tuple[int | None, int | None, bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(p.pts, p.dts, bytes(p)) for p in c.demux(s) if p.size]


def decoded(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def copy_of(previous: Path, folder: Path) -> Path:
    out = folder / "out.mp4"
    out.write_bytes(previous.read_bytes())
    return out


def tag_for(ranges: list[tuple[int, int]]) -> dict:
    return build_provenance(ranges, by_face={0: ranges}, source="clip.mp4")


def test_deltafaces_h264_has_closed_gops_of_fixed_length(previous: Path) -> None:
    layout = read_layout(previous)
    n = keyframe_interval(FPS, CONFIG.keyframe_seconds)
    assert [a for a, _ in layout.gop_frames] == list(range(0, NUM_FRAMES, n))
    assert any(p != d for p, d in zip(layout.pts, layout.dts)), "no B-frame reordering: the test proves less"


@pytest.mark.parametrize(("first", "last", "gops"), [(140, 149, [(100, 149)]), (45, 54, [(0, 49), (50, 99)])])
def test_only_the_gops_holding_the_range_are_reencoded(clip: Path, previous: Path, tmp_path: Path,
                                                       first: int, last: int, gops: list[tuple[int, int]]) -> None:
    out = copy_of(previous, tmp_path)
    stages = [Invert(range(20, 30)), Invert(range(first, last + 1))]
    result = smart_rerender(out, probe(clip), CONFIG, stages, first, last, tag_for([(20, 29), (first, last)]))
    assert result.frames_rendered == [[gops[0][0], gops[-1][1]]]  # consecutive GOPs: one encode
    assert (result.gops_reencoded, result.gops_total) == (len(gops), NUM_FRAMES // (FPS * 2))
    reencoded = sum(b - a + 1 for a, b in gops)
    assert (result.packets_reencoded, result.packets_copied) == (reencoded, NUM_FRAMES - reencoded)

    layout = read_layout(previous)
    inside = {j for g, (a, b) in enumerate(layout.gops) if layout.gop_frames[g] in gops for j in range(a, b)}
    old, new = packets(previous), packets(out)
    assert len(old) == len(new) == NUM_FRAMES
    assert all(old[j] == new[j] for j in range(NUM_FRAMES) if j not in inside), "a copied packet changed"
    assert any(old[j][2] != new[j][2] for j in inside), "the re-encoded GOPs kept their bytes"
    assert packets(previous, "audio") == packets(out, "audio")

    a, b = decoded(previous), decoded(out)
    assert [p for p, _ in a] == [p for p, _ in b]
    in_gops = {f for g0, g1 in gops for f in range(g0, g1 + 1)}
    assert all(np.array_equal(a[i][1], b[i][1]) for i in range(NUM_FRAMES) if i not in in_gops)
    # re-encoded frames are as close to what was asked as a render in one pass is
    full = decoded(render(clip, tmp_path / "full.mp4", stages))
    src = decoded(clip)
    for i in sorted(in_gops):
        ideal = src[i][1].astype(int)
        if any(i in s.frames for s in stages):
            ideal = 255 - ideal
        error, one_pass = (np.abs(x[i][1].astype(int) - ideal).mean() for x in (b, full))
        assert error <= one_pass * REENCODE_RATIO + REENCODE_SLACK, (i, error, one_pass)
    tag = read_provenance(out)
    assert tag["edited_ranges"] == [[20, 29], [first, last]]
    assert tag["rerendered_ranges"] == [[gops[0][0], gops[-1][1]]]


def test_no_previous_output_is_refused(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(NotStitchable, match="no previous output"):
        smart_rerender(tmp_path / "none.mp4", probe(clip), CONFIG, [], 0, 9, tag_for([]))


def test_other_encoder_settings_are_refused_and_nothing_changes(clip: Path, previous: Path, tmp_path: Path) -> None:
    out = copy_of(previous, tmp_path)
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    other = OutputConfig(preset=CONFIG.preset, crf=CONFIG.crf + 4)
    with pytest.raises(NotStitchable, match="encoder settings differ"):
        smart_rerender(out, probe(clip), other, [], 140, 149, tag_for([]))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_open_gops_are_refused(clip: Path, tmp_path: Path) -> None:
    src = [f for _, f in decoded(clip)]
    out = write_clip(tmp_path / "open.mp4", images=src, rate=FPS,
                     codec_options={"preset": "veryfast", "x264-params": "keyint=50:min-keyint=50:open-gop=1"})
    with pytest.raises(NotStitchable, match="open GOP|not closed"):
        smart_rerender(out, probe(clip), CONFIG, [], 140, 149, tag_for([]))


def test_another_frame_count_is_refused(clip: Path, previous: Path, tmp_path: Path) -> None:
    short = write_clip(tmp_path / "short.mp4", num_frames=NUM_FRAMES - 10, rate=FPS)
    with pytest.raises(NotStitchable, match="frame count differs"):
        smart_rerender(copy_of(previous, tmp_path), probe(short), CONFIG, [], 0, 9, tag_for([]))


def test_a_failure_mid_way_leaves_the_previous_output_whole(clip: Path, previous: Path, tmp_path: Path) -> None:
    out = copy_of(previous, tmp_path)
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="stage failed"):
        smart_rerender(out, probe(clip), CONFIG, [Invert(range(0), fail_at=145)], 140, 149, tag_for([]))
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"], "a temporary file was left"


def test_provenance_is_spliced_over_the_rerendered_frames() -> None:
    old = {"edited_ranges": [[10, 20], [40, 50]], "edited_ranges_by_face": {"0": [[10, 20]], "1": [[40, 50]]}}
    new = tag_for([])
    new["edited_ranges_by_face"] = {"0": [[15, 45]]}
    new["edited_ranges"] = [[15, 45]]
    tag = splice_provenance(old, new, [[12, 42]])
    assert tag["edited_ranges_by_face"] == {"0": [[10, 11], [15, 42]], "1": [[43, 50]]}
    assert tag["edited_ranges"] == [[10, 11], [15, 50]]
    assert tag["faces_edited"] and tag["rerendered_ranges"] == [[12, 42]]
    cleared = splice_provenance(old, tag_for([]), [[0, 60]])
    assert cleared["edited_ranges"] == [] and not cleared["faces_edited"]
    assert cleared["edited_ranges_by_face"] == {}


@pytest.mark.parametrize(("codec", "suffix"), [("ffv1", ".mp4"), ("prores", ".mov")])
def test_intra_only_codecs_reencode_exactly_the_range(tmp_path: Path, codec: str, suffix: str) -> None:
    """Every frame is a GOP: the stitched file decodes exactly like a render of the new edits in one pass."""
    clip = write_clip(tmp_path / "short.mp4", num_frames=60, rate=FPS, audio_seconds=60 / FPS)
    config = OutputConfig(codec=codec)
    old_stage, new_stage = Invert(range(5, 8)), Invert(range(30, 33))
    prev = render(clip, tmp_path / f"prev{suffix}", [old_stage], config)
    out = tmp_path / f"out{suffix}"
    out.write_bytes(prev.read_bytes())
    result = smart_rerender(out, probe(clip), config, [old_stage, new_stage], 30, 32, tag_for([(5, 7), (30, 32)]))
    assert (result.packets_reencoded, result.packets_copied) == (3, 57)
    full = render(clip, tmp_path / f"full{suffix}", [old_stage, new_stage], config)
    got, want = decoded(out), decoded(full)
    assert [p for p, _ in got] == [p for p, _ in want]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, want, strict=True))
    assert packets(prev, "audio") == packets(out, "audio")


def test_a_project_falls_back_to_a_full_render_and_says_why(clip: Path, tmp_path: Path) -> None:
    from plugin.project import load_project, render_project

    def project(crf: int) -> Path:
        path = tmp_path / "p.toml"
        path.write_text(f'version = 1\ninput = "{clip}"\n[output]\npath = "out.mp4"\ncrf = {crf}\npreset = "veryfast"\n')
        return path

    first = render_project(load_project(project(18)))
    assert first.mode == "full" and first.note == ""
    again = render_project(load_project(project(18)), frames="140-149")
    assert again.mode == "frames" and again.details["gops_reencoded"] == 1
    changed = render_project(load_project(project(24)), frames="140-149")
    assert changed.mode == "full" and changed.note.startswith("re-encoded the whole clip: the encoder settings differ")
    assert len(decoded(tmp_path / "out.mp4")) == NUM_FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "p.toml"]


@pytest.mark.parametrize("kind", ["subtitles_mkv", "timecode_mov"])
def test_other_streams_and_the_timecode_survive_the_stitch(tmp_path: Path, kind: str) -> None:
    from tests.plugin.media import subtitle_clip, timecode_clip

    src = subtitle_clip(tmp_path, 60) if kind == "subtitles_mkv" else timecode_clip(tmp_path, num_frames=60)
    prev = render(src, tmp_path / f"prev{src.suffix}", [])
    out = tmp_path / f"out{src.suffix}"
    out.write_bytes(prev.read_bytes())
    result = smart_rerender(out, probe(src), CONFIG, [Invert(range(52, 55))], 52, 54, tag_for([(52, 54)]))
    assert result.packets_reencoded == 10 and result.packets_copied == 50

    def streams(path: Path) -> list[tuple[str, str | None, str | None]]:
        with av.open(str(path)) as c:
            return [(s.type, s.name, s.metadata.get("timecode")) for s in c.streams]

    assert streams(out) == streams(prev)
    with av.open(str(out)) as c, av.open(str(prev)) as d:
        if kind == "subtitles_mkv":
            assert [bytes(p) for p in c.demux(c.streams.subtitles[0]) if p.size] == \
                [bytes(p) for p in d.demux(d.streams.subtitles[0]) if p.size]
    assert len(decoded(out)) == 60
