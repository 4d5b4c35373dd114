"""Reading: exact frame counts and pts, random access, rotation, colour, sequences, damage."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from plugin.video import VideoReader, probe
from tests.plugin import media
from tracking.errors import InputError, TruncatedInputError

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
#: Mean absolute difference (0-255) between a lossy H.264 frame (crf 12) and the image encoded.
LOSSY_MAD_TOL = 4.0
#: Largest difference (0-255) between our YUV->RGB conversion and the exact formula (rounding).
RGB_TOL = 1


def demuxed_pts(path: Path) -> list[int]:
    """Sorted pts of the video packets, straight from PyAV (the reference for counts)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return sorted(p.pts for p in c.demux(v) if p.size and not p.is_discard)


def decoded_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str, full: bool,
               bits: int = 8) -> np.ndarray:
    """The textbook conversion of 4:4:4 samples to 8-bit RGB (the reference)."""
    kr, kb = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}[matrix]
    scale, peak = 1 << (bits - 8), (1 << bits) - 1
    y, u, v = (a.astype(np.float64) for a in (y, u, v))
    if full:
        yn, un, vn = y / peak, (u - 128 * scale) / peak, (v - 128 * scale) / peak
    else:
        yn, un, vn = (y - 16 * scale) / (219 * scale), (u - 128 * scale) / (224 * scale), \
            (v - 128 * scale) / (224 * scale)
    r = yn + 2 * (1 - kr) * vn
    b = yn + 2 * (1 - kb) * un
    g = (yn - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.round(np.stack([r, g, b], -1) * 255), 0, 255).astype(np.uint8)


def test_constant_rate_clip_counts_and_pts(tmp_path: Path) -> None:
    path = media.cfr_clip(tmp_path, num_frames=20)
    info = probe(path)
    with VideoReader(path) as reader:
        frames = list(reader)
    assert info.num_frames == len(frames) == decoded_count(path) == 20
    assert [f.index for f in frames] == list(range(20))
    assert [f.pts for f in frames] == demuxed_pts(path) == list(reader.frame_pts)
    assert not info.is_vfr and info.start_pts == 0
    assert (info.width, info.height) == (media.WIDTH, media.HEIGHT)
    for f in frames:
        assert f.time_base == info.time_base
        assert np.abs(f.image.astype(int) - media.pattern_image(f.index)).mean() < LOSSY_MAD_TOL


def test_variable_rate_and_start_offset_are_kept(tmp_path: Path) -> None:
    vfr = media.vfr_clip(tmp_path, num_frames=20)
    with VideoReader(vfr) as reader:
        times = [f.pts * f.time_base for f in reader]
        assert reader.info.is_vfr
    assert times == [p * Fraction(1, 15360) for p in media.vfr_pts(20, 507)]
    offset = media.offset_clip(tmp_path, num_frames=12, start=1000)
    info = probe(offset)
    with VideoReader(offset) as reader:
        times = [f.pts * f.time_base for f in reader]
    assert times == [Fraction(1000 + 40 * i, 1000) for i in range(12)]
    assert info.start_pts * info.time_base == 1 and not info.is_vfr
    assert info.duration_s == pytest.approx(12 * 0.04)


@pytest.mark.parametrize("make", [media.long_gop_clip, media.vfr_clip])
def test_frame_at_matches_sequential_decode(tmp_path: Path, make) -> None:  # noqa: ANN001
    path = make(tmp_path)
    with VideoReader(path) as reader:
        frames = list(reader)
        n = len(frames)
        order = random.Random(7).sample(range(n), n)[:12] + [n - 1, 0, 1, 2, n - 2]
        for i in order:
            got = reader.frame_at(i)
            assert got.index == i and got.pts == frames[i].pts
            assert np.array_equal(got.image, frames[i].image), f"frame {i}"
        part = list(reader.frames(n // 3, n - 2))
    assert [f.index for f in part] == list(range(n // 3, n - 2))
    assert all(np.array_equal(f.image, frames[f.index].image) for f in part)


def test_iterating_while_seeking_is_independent(tmp_path: Path) -> None:
    path = media.long_gop_clip(tmp_path)
    with VideoReader(path) as reader:
        seq = []
        for f in reader:
            seq.append(f)
            reader.frame_at(len(seq) * 7 % reader.info.num_frames)
        assert reader.frames_read == len(seq) == reader.info.num_frames
    assert [f.index for f in seq] == list(range(len(seq)))


def test_out_of_range_index(tmp_path: Path) -> None:
    with VideoReader(media.cfr_clip(tmp_path, num_frames=5)) as reader:
        with pytest.raises(IndexError):
            reader.frame_at(5)
        with pytest.raises(IndexError):
            list(reader.frames(2, 9))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_applied(tmp_path: Path, rotation: int) -> None:
    upright = media.write_clip(tmp_path / "plain.mp4", num_frames=4)
    rotated = media.write_clip(tmp_path / "rot.mp4", num_frames=4, rotation=rotation)
    info = probe(rotated)
    assert info.rotation == rotation
    expected_size = (media.HEIGHT, media.WIDTH) if rotation % 180 else (media.WIDTH, media.HEIGHT)
    assert (info.width, info.height) == expected_size
    with VideoReader(upright) as a, VideoReader(rotated) as b:
        for fa, fb in zip(a, b, strict=True):
            # Same encoder input, so the coded pictures match; display = rotate counter-clockwise.
            assert np.array_equal(fb.image, np.rot90(fa.image, rotation // 90))
            assert fb.image.shape == (info.height, info.width, 3)


@pytest.mark.parametrize(
    ("pix_fmt", "space", "rng", "bits"),
    [("yuv444p", "bt709", "tv", 8), ("yuv444p", "bt601", "pc", 8), ("yuv444p10le", "bt709", "tv", 10)],
)
def test_colour_matrix_and_range_are_honoured(tmp_path: Path, pix_fmt: str, space: str, rng: str,
                                              bits: int) -> None:
    gen = np.random.default_rng(3)
    lo, hi = (16, 235) if rng == "tv" else (0, 255)
    scale = 1 << (bits - 8)
    dtype = np.uint16 if bits > 8 else np.uint8
    planes = [(gen.integers(lo * scale, hi * scale + 1, (24, 32))).astype(dtype) for _ in range(3)]
    path = media.write_yuv_clip(tmp_path / "yuv.mkv", [planes], pix_fmt,
                                colorspace=1 if space == "bt709" else 6,
                                color_range=1 if rng == "tv" else 2)
    with VideoReader(path) as reader:
        assert reader.info.yuv_matrix == space and reader.info.full_range == (rng == "pc")
        assert reader.info.bit_depth == bits
        image = next(iter(reader)).image
    expected = yuv_to_rgb(*planes, matrix=space, full=rng == "pc", bits=bits)
    assert np.abs(image.astype(int) - expected).max() <= RGB_TOL
    other = yuv_to_rgb(*planes, matrix="bt601" if space == "bt709" else "bt709",
                       full=rng == "pc", bits=bits)
    assert np.abs(other.astype(int) - expected).max() > 10  # the test can tell matrices apart


@pytest.mark.parametrize("make", [media.ten_bit_clip, media.yuv444_clip])
def test_high_bit_depth_and_444_h264(tmp_path: Path, make) -> None:  # noqa: ANN001
    path = make(tmp_path)
    info = probe(path)
    assert info.pix_fmt in ("yuv420p10le", "yuv444p")
    assert info.bit_depth == (10 if "10" in info.pix_fmt else 8)
    with VideoReader(path) as reader:
        for f in reader:
            assert f.image.dtype == np.uint8
            assert np.abs(f.image.astype(int) - media.pattern_image(f.index)).mean() < LOSSY_MAD_TOL


def test_image_sequence_is_a_clip(tmp_path: Path) -> None:
    folder = media.image_sequence(tmp_path / "frames", num_frames=12, first=1, digits=1)
    (folder / "notes.txt").write_text("not a frame")
    with VideoReader(folder, fps=Fraction(30000, 1001)) as reader:
        assert reader.stems == tuple(str(i) for i in range(1, 13))  # 10 after 9, not after 1
        assert reader.info.time_base == Fraction(1001, 30000) and reader.info.num_frames == 12
        frames = list(reader)
        assert [f.pts for f in frames] == list(range(12))
        assert all(np.array_equal(f.image, media.pattern_image(f.index)) for f in frames)
        assert np.array_equal(reader.frame_at(10).image, frames[10].image)
    jpgs = media.image_sequence(tmp_path / "jpg", num_frames=3, ext="jpg")
    with VideoReader(jpgs) as reader:
        assert reader.stems == ("00001", "00002", "00003")
        for f in reader:
            assert np.abs(f.image.astype(int) - media.pattern_image(f.index)).mean() < LOSSY_MAD_TOL


@pytest.mark.parametrize("gop", [{}, {"preset": "medium", "bf": "3", "g": "12"}])
def test_truncated_mp4_raises_or_stops_cleanly(tmp_path: Path, gop: dict[str, str]) -> None:
    # Index (moov) first, as a streaming copy has it, so the cut loses only media data.
    whole = media.write_clip(tmp_path / "whole.mp4", num_frames=30, codec_options=gop,
                             container_options={"movflags": "faststart"})
    cut = media.truncated_copy(whole, tmp_path / "cut.mp4", keep=0.6)
    with VideoReader(whole) as reader:
        good = list(reader)
    seen = []
    with VideoReader(cut) as reader, pytest.raises(TruncatedInputError) as err:
        for f in reader:
            seen.append(f)
    assert "cut.mp4" in str(err.value) and "\n" not in str(err.value)
    assert 0 < err.value.stopped_at == len(seen) < 30
    with VideoReader(cut, allow_truncated=True) as reader:
        kept = list(reader)
        assert reader.truncated_at == len(kept) == err.value.stopped_at
        assert not reader.info.complete
    assert all(np.array_equal(a.image, b.image) and a.pts == b.pts
               for a, b in zip(kept, good, strict=False))


def test_truncated_matroska_is_detected(tmp_path: Path) -> None:
    whole = media.write_clip(tmp_path / "whole.mkv", num_frames=30)
    cut = media.truncated_copy(whole, tmp_path / "cut.mkv", keep=0.6)
    with VideoReader(cut) as reader, pytest.raises(TruncatedInputError) as err:
        list(reader)
    assert 0 < err.value.stopped_at < 30
    with VideoReader(cut, allow_truncated=True) as reader:
        assert len(list(reader)) == reader.truncated_at == err.value.stopped_at


def test_mp4_cut_before_its_index_is_an_input_error(tmp_path: Path) -> None:
    whole = media.cfr_clip(tmp_path, num_frames=10)  # index (moov) at the end
    cut = media.truncated_copy(whole, tmp_path / "cut.mp4", keep=0.5)
    with pytest.raises(InputError, match="cut.mp4"):
        VideoReader(cut)


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.mp4"):
        probe(tmp_path / "nope.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(InputError, match="notes.mp4"):
        VideoReader(text)
    with pytest.raises(InputError, match="no video stream"):
        probe(media.audio_only(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no PNG or JPEG"):
        probe(tmp_path / "empty")
    for exc in (InputError, TruncatedInputError):
        assert issubclass(exc, ValueError)


def test_reading_never_modifies_the_input(tmp_path: Path) -> None:
    path = media.audio_clip(tmp_path, num_frames=10)
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    with VideoReader(path) as reader:
        list(reader)
        reader.frame_at(5)
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_probe_describes_other_streams(tmp_path: Path) -> None:
    info = probe(media.audio_clip(tmp_path, num_frames=10))
    assert info.has_audio
    assert [(s.kind, s.codec_name) for s in info.streams] == [("audio", "aac")]


def test_real_fixtures_index_matches_decoding() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"fixture folder {FIXTURES} is absent")
    clip = FIXTURES / "retalking_face_1.mp4"
    info = probe(clip)
    assert info.num_frames == len(demuxed_pts(clip)) == decoded_count(clip)
    assert info.is_vfr and info.has_audio and info.start_pts == 507
    with VideoReader(clip) as reader:
        first = list(reader.frames(0, 12))
        assert [f.pts for f in first] == demuxed_pts(clip)[:12]
        assert np.array_equal(reader.frame_at(11).image, first[11].image)


@pytest.mark.slow
def test_real_fixtures_random_access_everywhere() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"fixture folder {FIXTURES} is absent")
    for clip in sorted(FIXTURES.glob("*.mp4")):
        with VideoReader(clip) as reader:
            frames = list(reader)
            assert len(frames) == decoded_count(clip)
            for i in random.Random(1).sample(range(len(frames)), 6):
                assert np.array_equal(reader.frame_at(i).image, frames[i].image), (clip.name, i)
