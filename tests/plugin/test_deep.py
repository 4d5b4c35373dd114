"""Sources of more than 8 bits a sample keep their precision where no stage changed the picture.

The source is a real fixture clip with a gentle ramp added (three 8-bit levels across the width,
so it holds detail 8 bits cannot), written lossless as 10-bit 4:4:4 FFV1.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from plugin.deep import merge
from plugin.edit_job import EditJob, run_edit
from plugin.pipeline import RenderJob, run_render
from plugin.probe import probe
from plugin.video import VideoReader
from plugin.writer import OutputConfig, VideoWriter
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve
from tracking.analysis import load_analysis
from tracking.frame import Frame

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
CLIP = FIXTURES / "retalking_face_1.mp4"
FRAMES = 6


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CLIP.is_file():
        pytest.skip(f"fixture {CLIP} is absent")
    with VideoReader(CLIP) as reader:
        images = [f.image for f in reader.frames(0, FRAMES)]
    h, w = images[0].shape[:2]
    ramp = np.linspace(0.0, 3.0, w)[None, :, None]
    path = tmp_path_factory.mktemp("deep") / "source10.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p10le"
        for img in images:
            rgb48 = np.clip((img + ramp) * 257.0, 0, 65535).astype(np.uint16)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb48, format="rgb48le").reformat(format="yuv444p10le")))
        out.mux(stream.encode())
    assert probe(path).bit_depth == 10
    return path


def _deep(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        frames = list(reader.frames(deep=True))
    assert all(f.deep is not None for f in frames)
    return [f.deep.astype(np.int64) for f in frames]


def test_pass_through_keeps_the_source_samples(source: Path, tmp_path: Path) -> None:
    want = _deep(source)
    run_render(RenderJob(source, tmp_path / "o.mkv", OutputConfig(codec="ffv1")))
    assert probe(tmp_path / "o.mkv").pix_fmt == "gbrp16le"  # FFV1's default for a deep source
    got = _deep(tmp_path / "o.mkv")
    assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))  # lossless, bit for bit
    # ProRes is lossy, but its 10 bits now carry the source's, not an 8-bit rounding of them.
    run_render(RenderJob(source, tmp_path / "deep.mov", OutputConfig(codec="prores")))
    with VideoReader(source) as reader, VideoWriter(tmp_path / "eight.mov", reader, OutputConfig(codec="prores")) as w:
        for frame in reader.frames():  # no 16-bit image: the 8-bit path
            w.write(frame)

    def error(path: Path) -> float:
        return float(np.mean([np.abs(a - b).mean() for a, b in zip(want, _deep(path), strict=True)]))

    # Measured: 21 against 71 (16-bit units; one 10-bit level is 64).
    assert error(tmp_path / "deep.mov") < 0.5 * error(tmp_path / "eight.mov")


def test_an_edit_changes_the_16_bit_picture_only_around_the_face(source: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    schedule = EditSchedule((EditEntry(0, "smile", StrengthCurve.constant(0.7)),))
    run_edit(EditJob(RenderJob(source, tmp_path / "e.mkv", OutputConfig(codec="ffv1")), schedule, cache_dir=cache))
    (analysis_file,) = cache.glob("*.analysis.npz")
    track = load_analysis(analysis_file).tracks[0]
    want, got = _deep(source), _deep(tmp_path / "e.mkv")
    for i, (a, b) in enumerate(zip(want, got, strict=True)):
        changed = (a != b).any(axis=2)
        assert changed.sum() > 1000  # the smile
        lm = track.landmarks[i]
        (x0, y0), (x1, y1) = lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)
        grow = 0.5 * max(x1 - x0, y1 - y0)
        ys, xs = np.nonzero(changed)
        # Every changed sample lies around the face; everywhere else the source's, bit for bit.
        assert xs.min() >= x0 - grow and xs.max() <= x1 + grow and ys.min() >= y0 - grow and ys.max() <= y1 + grow


@pytest.mark.parametrize(("codec", "suffix"), [("ffv1", ".mkv"), ("prores", ".mov")])
def test_a_partial_re_render_of_a_deep_source_matches_a_whole_one(source: Path, tmp_path: Path, codec: str,
                                                                   suffix: str) -> None:
    from plugin.edit_job import prepare_edit
    from plugin.provenance import build_provenance
    from plugin.smartrender import smart_rerender

    config = OutputConfig(codec=codec)
    schedule = EditSchedule((EditEntry(0, "smile", StrengthCurve.constant(0.7)),))
    stage = prepare_edit(source, schedule, cache_dir=tmp_path / "cache").stage
    whole, part = tmp_path / f"whole{suffix}", tmp_path / f"part{suffix}"
    run_render(RenderJob(source, whole, config), [stage])
    run_render(RenderJob(source, part, config), [])  # the previous render, without the edit
    result = smart_rerender(part, probe(source), config, [stage], 2, 3, build_provenance([[0, FRAMES - 1]]))
    assert result.frames_rendered == [[2, 3]]

    def packets(path: Path) -> list[bytes]:
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]

    a, b = packets(whole), packets(part)
    assert a[2:4] == b[2:4]  # re-encoded from the 16-bit images, as the whole render did
    assert a[0] != b[0]  # (frame 0 was not re-rendered: the edit is not there)


def test_merge_adds_the_8_bit_change_in_its_box_only() -> None:
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (40, 50, 3), dtype=np.uint16)
    keep = deep.copy()
    before = (deep // 257).astype(np.uint8)
    assert merge(deep, before, before) is deep and np.array_equal(deep, keep)
    after = before.copy()
    after[10:13, 20:24] = np.clip(after[10:13, 20:24].astype(int) + rng.integers(-3, 4, (3, 4, 3)), 0, 255)
    after[11, 21] = [0, 255, 128]  # a large change, clipped at the ends of the 16-bit range
    out = merge(deep, before, after)
    want = np.clip(keep.astype(np.int64) + 257 * (after.astype(np.int64) - before), 0, 65535)
    assert np.array_equal(out, want)
    outside = np.ones((40, 50), bool)
    outside[10:13, 20:24] = False
    assert np.array_equal(out[outside], keep[outside])


def test_a_frame_checks_its_16_bit_image() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    Frame(0, 0, 1, image, np.zeros((4, 6, 3), np.uint16))
    with pytest.raises(ValueError, match="deep"):
        Frame(0, 0, 1, image, np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="deep"):
        Frame(0, 0, 1, image, np.zeros((4, 5, 3), np.uint16))


def test_a_folder_of_16_bit_pngs_keeps_its_samples(tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(5)
    want = [rng.integers(0, 65536, (24, 32, 3), dtype=np.uint16) for _ in range(3)]
    for i, rgb in enumerate(want):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.ascontiguousarray(rgb[:, :, ::-1]))
    assert probe(folder).bit_depth == 16
    run_render(RenderJob(folder, tmp_path / "o.mkv", OutputConfig(codec="ffv1")))
    got = _deep(tmp_path / "o.mkv")
    assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))
