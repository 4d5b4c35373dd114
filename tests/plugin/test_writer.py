"""Writing: exact timing, lossless codecs, stream copy, colour tags, atomic output, provenance."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from plugin.output import AtomicOutput, check_output_path, temp_path_for
from plugin.provenance import (
    PROVENANCE_KEY,
    build_provenance,
    merge_ranges,
    provenance_comment,
    read_provenance,
)
from plugin.video import VideoReader, probe
from plugin.writer import OutputConfig, VideoWriter
from tests.plugin import media
from tracking.errors import ConfigError, OutputError
from tracking.frame import Frame

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
#: Mean absolute difference (0-255) allowed after a lossy re-encode (H.264 crf 16 / ProRes HQ).
REENCODE_MAD_TOL = 3.0
FAST = OutputConfig(preset="ultrafast")


def read_all(path: Path) -> list[Frame]:
    with VideoReader(path) as reader:
        return list(reader)


def times(frames: list[Frame]) -> list[Fraction]:
    return [f.pts * f.time_base for f in frames]


def packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [bytes(p) for p in c.demux(streams) if p.size] if streams else []


def copy_clip(src: Path, out: Path, config: OutputConfig = FAST, tag: dict | None = None) -> VideoWriter:
    with VideoReader(src) as reader, VideoWriter(out, reader, config, tag) as writer:
        for frame in reader:
            writer.write(frame)
    return writer


def noise_frames(info, n: int, seed: int = 0) -> list[Frame]:  # noqa: ANN001
    """Random RGB frames with the source's first n pts: the hardest case for a lossless codec."""
    gen = np.random.default_rng(seed)
    with VideoReader(info.path) as reader:
        pts = reader.frame_pts[:n]
    return [Frame(i, p, info.time_base, gen.integers(0, 256, (info.height, info.width, 3), np.uint8))
            for i, p in enumerate(pts)]


# -- configuration and output paths -----------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"codec": "vp9"}, {"crf": 52}, {"crf": 1.5}, {"preset": "quick"},
                                    {"codec": "h264", "pix_fmt": "bgr0"}])
def test_output_config_is_validated(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        OutputConfig(**kwargs)


def test_codec_must_fit_the_container(tmp_path: Path) -> None:
    info = probe(media.cfr_clip(tmp_path, num_frames=3))
    for name, codec in [("x.mov", "ffv1"), ("x.mp4", "prores"), ("x.mkv", "png")]:
        with pytest.raises(ConfigError, match=name):
            VideoWriter(tmp_path / name, info, OutputConfig(codec))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfr.mp4"]


def test_temp_name_is_hidden_beside_and_keeps_the_extension(tmp_path: Path) -> None:
    tmp = temp_path_for(tmp_path / "out.mov")
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.") and tmp.suffix == ".mov"
    assert tmp != temp_path_for(tmp_path / "out.mov")


def test_output_checks_happen_before_work(tmp_path: Path) -> None:
    src = media.cfr_clip(tmp_path, num_frames=3)
    with pytest.raises(OutputError, match="missing"):
        check_output_path(tmp_path / "missing" / "out.mp4")
    with pytest.raises(OutputError, match="input"):
        check_output_path(tmp_path / "." / "cfr.mp4", overwrite=True, inputs=[src])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not written by deltaface"):
        check_output_path(tmp_path / "other", overwrite=True, is_folder=True)
    assert check_output_path(tmp_path / "new.mp4") == (tmp_path / "new.mp4").absolute()


def test_existing_output_is_refused_without_overwrite(tmp_path: Path) -> None:
    src = media.cfr_clip(tmp_path, num_frames=4)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="out.mp4"):
        copy_clip(src, out)
    assert out.read_bytes() == b"precious"
    copy_clip(src, out, OutputConfig(preset="ultrafast", overwrite=True))
    assert len(read_all(out)) == 4


def test_exception_mid_write_leaves_nothing(tmp_path: Path) -> None:
    src = media.audio_clip(tmp_path, num_frames=10)
    before = sorted(p.name for p in tmp_path.iterdir())
    for codec, name in [("h264", "out.mp4"), ("png", "out_png")]:
        with pytest.raises(RuntimeError, match="boom"):
            with VideoReader(src) as reader, VideoWriter(tmp_path / name, reader, OutputConfig(codec)) as w:
                for frame in reader:
                    w.write(frame)
                    if frame.index == 4:
                        raise RuntimeError("boom")
        assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_atomic_output_commits_or_cleans_up(tmp_path: Path) -> None:
    with AtomicOutput(tmp_path / "a.txt") as tmp:
        tmp.write_text("done")
        assert not (tmp_path / "a.txt").exists()
    assert (tmp_path / "a.txt").read_text() == "done"
    with pytest.raises(KeyError), AtomicOutput(tmp_path / "b.txt") as tmp:
        tmp.write_text("half")
        raise KeyError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_frames_that_do_not_fit_are_rejected(tmp_path: Path) -> None:
    src = media.cfr_clip(tmp_path, num_frames=3)
    info = probe(src)
    with VideoWriter(tmp_path / "o.mp4", info, FAST) as w:
        img = np.zeros((info.height, info.width, 3), np.uint8)
        with pytest.raises(ValueError, match="time base"):
            w.write(Frame(0, 0, Fraction(1, 30), img))
        with pytest.raises(ValueError, match="64x48"):
            w.write(Frame(0, 0, info.time_base, img[:-2]))
        w.write(Frame(0, 512, info.time_base, img))
        with pytest.raises(ValueError, match="before the previous"):  # (a repeated pts is moved on)
            w.write(Frame(1, 511, info.time_base, img))


# -- timing, streams, pixels ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.mp4", "out.mov"])
def test_variable_rate_and_offset_survive_h264(tmp_path: Path, name: str) -> None:
    for src in (media.vfr_clip(tmp_path), media.offset_clip(tmp_path)):
        frames = read_all(src)
        writer = copy_clip(src, tmp_path / name, OutputConfig(preset="medium", overwrite=True))
        out = read_all(tmp_path / name)
        assert [f.pts for f in out] == [f.pts for f in frames]  # same time base, same numbers
        assert times(out) == times(frames) and writer.max_pts_error_s == 0.0
        assert probe(tmp_path / name).is_vfr == probe(src).is_vfr
        assert np.mean([np.abs(a.image.astype(int) - b.image).mean()
                        for a, b in zip(out, frames, strict=True)]) < REENCODE_MAD_TOL


def test_ffv1_is_lossless_with_exact_pts_in_nut(tmp_path: Path) -> None:
    info = probe(media.vfr_clip(tmp_path))
    frames = noise_frames(info, 12)
    with VideoWriter(tmp_path / "o.nut", info, OutputConfig("ffv1")) as w:
        for f in frames:
            w.write(f)
    out = read_all(tmp_path / "o.nut")
    assert times(out) == times(frames) and w.max_pts_error_s == 0.0
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out, frames, strict=True))


def test_ffv1_in_matroska_is_lossless_to_the_millisecond(tmp_path: Path) -> None:
    info = probe(media.vfr_clip(tmp_path))
    frames = noise_frames(info, 8, seed=1)
    with VideoWriter(tmp_path / "o.mkv", info, OutputConfig("ffv1")) as w:
        for f in frames:
            w.write(f)
    out = read_all(tmp_path / "o.mkv")
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out, frames, strict=True))
    error = max(abs(a - b) for a, b in zip(times(out), times(frames), strict=True))
    assert error <= Fraction(1, 2000) and w.max_pts_error_s == pytest.approx(float(error))


def test_png_folder_round_trip_and_stems(tmp_path: Path) -> None:
    info = probe(media.cfr_clip(tmp_path, num_frames=5))
    frames = noise_frames(info, 5, seed=2)
    with VideoWriter(tmp_path / "frames", info, OutputConfig("png")) as w:
        for f in frames:
            w.write(f)
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)] + ["provenance.json"]
    out = read_all(tmp_path / "frames")
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out, frames, strict=True))
    seq = media.image_sequence(tmp_path / "dfl", num_frames=4, first=7)
    copy_clip(seq, tmp_path / "merged", OutputConfig("png"))
    assert sorted(p.stem for p in (tmp_path / "merged").glob("*.png")) == ["00007", "00008", "00009", "00010"]
    assert all(np.array_equal(a.image, b.image)
               for a, b in zip(read_all(tmp_path / "merged"), read_all(seq), strict=True))


def test_png_folder_replaced_only_with_overwrite(tmp_path: Path) -> None:
    src = media.image_sequence(tmp_path / "src", num_frames=2)
    copy_clip(src, tmp_path / "out", OutputConfig("png"))
    with pytest.raises(OutputError):
        copy_clip(src, tmp_path / "out", OutputConfig("png"))
    copy_clip(src, tmp_path / "out", OutputConfig("png", overwrite=True))
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", ["out.mp4", "out.mkv"])
def test_audio_is_copied_byte_identical_and_interleaved(tmp_path: Path, name: str) -> None:
    src = media.audio_clip(tmp_path, num_frames=25)
    writer = copy_clip(src, tmp_path / name)
    assert packets(tmp_path / name, "audio") == packets(src, "audio")
    assert writer.copied_packets == len(packets(src, "audio")) and writer.skipped_streams == []
    with av.open(str(tmp_path / name)) as c:
        kinds = [p.stream.type for p in sorted((p for p in c.demux() if p.size), key=lambda p: p.pos)]
    # Audio is spread through the file, not appended after the last video packet.
    assert kinds.index("audio") < len(kinds) // 4
    assert probe(tmp_path / name).has_audio


def test_subtitles_are_copied_where_the_container_allows(tmp_path: Path) -> None:
    src = media.subtitle_clip(tmp_path)
    cues = packets(src, "subtitle")
    assert len(cues) == 2
    writer = copy_clip(src, tmp_path / "o.mkv")
    assert packets(tmp_path / "o.mkv", "subtitle") == cues and writer.skipped_streams == []
    writer = copy_clip(src, tmp_path / "o.mp4")  # MP4 holds mov_text, not SubRip
    assert packets(tmp_path / "o.mp4", "subtitle") == []
    assert len(writer.skipped_streams) == 1 and "subtitle" in writer.skipped_streams[0]


def test_timecode_is_kept(tmp_path: Path) -> None:
    src = media.timecode_clip(tmp_path, "01:02:03:04")
    assert [s.kind for s in probe(src).streams] == ["data"]  # QuickTime timecode track
    for name in ("o.mov", "o.mkv"):
        writer = copy_clip(src, tmp_path / name)
        with av.open(str(tmp_path / name)) as c:
            meta = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
        assert meta["timecode"] == "01:02:03:04"
        assert len(writer.skipped_streams) == 1  # the track itself: MOV rebuilds it from the tag


def test_colour_tags_are_kept_and_match_the_conversion(tmp_path: Path) -> None:
    src = media.write_clip(tmp_path / "tagged.mov", num_frames=6, bt709_tags=True)
    src_info = probe(src)
    assert src_info.color_description == "tv/bt709/bt709/bt709"
    for codec, name in [("h264", "o.mp4"), ("prores", "o.mov")]:
        copy_clip(src, tmp_path / name, OutputConfig(codec, preset="ultrafast"))
        out_info = probe(tmp_path / name)
        assert out_info.color_description == src_info.color_description
        for a, b in zip(read_all(tmp_path / name), read_all(src), strict=True):
            assert np.abs(a.image.astype(int) - b.image).mean() < REENCODE_MAD_TOL
    assert probe(tmp_path / "o.mov").pix_fmt == "yuv422p10le"


def test_rotated_source_is_written_upright(tmp_path: Path) -> None:
    src = media.rotated_clip(tmp_path, 90)
    copy_clip(src, tmp_path / "o.mkv", OutputConfig("ffv1"))
    info = probe(tmp_path / "o.mkv")
    assert info.rotation == 0 and (info.width, info.height) == (media.HEIGHT, media.WIDTH)
    assert all(np.array_equal(a.image, b.image)
               for a, b in zip(read_all(tmp_path / "o.mkv"), read_all(src), strict=True))


@pytest.mark.parametrize("top_first", [True, False])
def test_interlaced_source_stays_interlaced_in_its_field_order(tmp_path: Path, top_first: bool) -> None:
    """Frames are read woven; the output keeps the field order (H.264 codes fields again), so a
    1080i deliverable is not turned progressive behind the editor's back."""
    src = media.interlaced_clip(tmp_path, top_first=top_first)
    src_info = probe(src)
    assert src_info.interlaced and src_info.top_field_first == top_first
    for codec, name in [("h264", "o.mp4"), ("ffv1", "o.mkv"), ("prores", "o.mov")]:
        copy_clip(src, tmp_path / name, OutputConfig(codec, preset="ultrafast"))
        assert probe(tmp_path / name).field_order == src_info.field_order
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert all(f.interlaced_frame for f in c.decode(video=0))
    assert all(np.array_equal(a.image, b.image)
               for a, b in zip(read_all(tmp_path / "o.mkv"), read_all(src), strict=True))
    progressive = media.cfr_clip(tmp_path, num_frames=4)
    copy_clip(progressive, tmp_path / "p.mp4")
    assert not probe(progressive).interlaced and probe(tmp_path / "p.mp4").field_order in (0, 1)


def test_editing_a_turned_interlaced_clip_in_woven_frames_says_so(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from plugin.edit_job import warn_about_source

    (tmp_path / "t").mkdir()
    turned = probe(media.interlaced_clip(tmp_path / "t", rotation=90))
    upright = probe(media.interlaced_clip(tmp_path, top_first=False))
    assert turned.interlaced and not turned.fields_are_rows and upright.fields_are_rows
    with caplog.at_level(logging.WARNING, logger="plugin.edit_job"):
        warn_about_source(turned)
        warn_about_source(upright)  # edited field by field: nothing to say
        warn_about_source(probe(media.cfr_clip(tmp_path, num_frames=2)))
    (record,) = caplog.records
    assert "interlaced and displayed turned by" in record.getMessage()


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_repeated_pts_is_written_one_tick_later(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  suffix: str) -> None:
    import logging

    # A muxing fault (screen recorders, bad concatenations): frames 2 and 3 repeat frame 1's pts.
    src = media.write_clip(tmp_path / "repeat.mkv", num_frames=6, codec="ffv1", pix_fmt="bgr0",
                           pts=[0, 40, 40, 40, 200, 240], time_base=Fraction(1, 1000))
    with caplog.at_level(logging.WARNING, logger="plugin.writer"):
        writer = copy_clip(src, tmp_path / f"o{suffix}")
    assert writer.pts_moved == 2
    (record,) = [r for r in caplog.records if "pts of the frame before it" in r.getMessage()]
    assert "frame 2" in record.getMessage()
    with av.open(str(tmp_path / f"o{suffix}")) as c:
        assert [f.pts for f in c.decode(video=0)] == [0, 40, 41, 42, 200, 240]
    with pytest.raises(ValueError, match="before the previous"):  # going back is still refused
        with VideoReader(src) as reader, VideoWriter(tmp_path / "back.mkv", reader, FAST) as w:
            frames = list(reader)
            w.write(frames[1])
            w.write(frames[0])


def test_a_10_bit_source_written_8_bit_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    deep = media.write_clip(tmp_path / "deep.mkv", num_frames=2, pix_fmt="yuv420p10le")
    assert probe(deep).bit_depth == 10
    with caplog.at_level(logging.WARNING, logger="plugin.writer"):
        copy_clip(deep, tmp_path / "o.mp4")  # h264: 8 bits
        copy_clip(deep, tmp_path / "o.mov", OutputConfig(codec="prores"))  # 10 bits: nothing lost
        copy_clip(media.yuv444_clip(tmp_path, num_frames=2), tmp_path / "p.mp4")  # 8 bits in
    (record,) = [r for r in caplog.records if "bits a sample" in r.getMessage()]
    assert "10 bits a sample (yuv420p10le)" in record.getMessage() and "keeps 8" in record.getMessage()
    assert probe(tmp_path / "o.mov").bit_depth == 10


def test_rotated_interlaced_source_is_written_progressive(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    src = media.interlaced_clip(tmp_path, rotation=90)
    assert probe(src).interlaced
    with caplog.at_level(logging.WARNING, logger="plugin.writer"):
        copy_clip(src, tmp_path / "o.mp4")
    assert not probe(tmp_path / "o.mp4").interlaced
    assert any("interlaced" in r.getMessage() and "progressive" in r.getMessage() for r in caplog.records)


# -- provenance -------------------------------------------------------------------------------


def test_provenance_tag_and_sentence() -> None:
    when = datetime(2026, 11, 24, 21, 18, tzinfo=timezone.utc)
    tag = build_provenance([(10, 20)], by_face={1: [(15, 25), (40, 40)]}, source="/x/clip.mp4",
                           created=when)
    assert tag["tool"] == "deltaface" and tag["faces_edited"] is True
    assert tag["edited_ranges"] == [[10, 25], [40, 40]]
    assert tag["edited_ranges_by_face"] == {"1": [[15, 25], [40, 40]]}
    assert tag["created_utc"] == "2026-11-24T21:18:00Z" and tag["source"] == "clip.mp4"
    sentence = f"Faces edited by deltaface {tag['version']} in frames 10-25, 40"
    assert provenance_comment(tag).startswith(sentence)
    none = build_provenance()
    assert none["faces_edited"] is False
    assert provenance_comment(none) == f"Processed by deltaface {none['version']}; no faces edited"
    assert merge_ranges([(5, 6), (0, 2), (3, 4)]) == [[0, 6]]
    with pytest.raises(ValueError):
        merge_ranges([(4, 2)])


@pytest.mark.parametrize("name,codec", [("o.mp4", "h264"), ("o.mov", "prores"), ("o.mkv", "ffv1"),
                                        ("o.nut", "ffv1"), ("o_png", "png")])
def test_provenance_round_trips(tmp_path: Path, name: str, codec: str) -> None:
    src = media.cfr_clip(tmp_path, num_frames=3)
    tag = build_provenance([(1, 2)], source=src)
    copy_clip(src, tmp_path / name, OutputConfig(codec, preset="ultrafast"), tag)
    assert read_provenance(tmp_path / name) == tag
    if codec != "png":
        with av.open(str(tmp_path / name)) as c:
            meta = {k.lower(): v for k, v in c.metadata.items()}
        assert meta["comment"] == provenance_comment(tag)
        assert json.loads(meta[PROVENANCE_KEY]) == tag
    assert read_provenance(src) is None


# -- real footage -----------------------------------------------------------------------------


def test_real_vfr_clip_with_audio_through_ffv1(tmp_path: Path) -> None:
    clip = FIXTURES / "retalking_face_1.mp4"
    if not clip.is_file():
        pytest.skip(f"fixture {clip} is absent")
    with VideoReader(clip) as reader:
        frames = list(reader.frames(0, 30))
        with VideoWriter(tmp_path / "o.nut", reader, OutputConfig("ffv1")) as w:
            for f in frames:
                w.write(f)
    out = read_all(tmp_path / "o.nut")
    assert len(out) == 30
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out, frames, strict=True))
    assert packets(tmp_path / "o.nut", "audio") == packets(clip, "audio")
    # NUT keeps every frame interval exactly. AAC's priming packet starts before zero, which
    # NUT cannot store, so the muxer delays the whole file (video and audio alike) by it.
    t_in, t_out = times(frames), times(out)
    assert [b - t_out[0] for b in t_out] == [a - t_in[0] for a in t_in]
    priming = Fraction(1024, 44100)
    assert abs((t_out[0] - t_in[0]) - priming) < Fraction(1, 15360)
    assert w.max_pts_error_s == pytest.approx(float(t_out[0] - t_in[0]))
    # MP4 (edit lists) keeps the same timeline exactly, audio included.
    with VideoReader(clip) as reader, VideoWriter(tmp_path / "o.mp4", reader, FAST) as w2:
        for f in frames:
            w2.write(f)
    assert [f.pts for f in read_all(tmp_path / "o.mp4")] == [f.pts for f in frames]
    assert w2.max_pts_error_s == 0.0
    assert packets(tmp_path / "o.mp4", "audio") == packets(clip, "audio")


def test_alpha_source_is_announced_as_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import cv2

    folder = tmp_path / "rgba"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i:05d}.png"), np.full((16, 16, 4), 100 + i, np.uint8))
    info = probe(folder)
    with caplog.at_level(logging.WARNING, logger="plugin.writer"):
        with VideoWriter(tmp_path / "out.mp4", info, OutputConfig("ffv1")) as writer:
            with VideoReader(folder) as reader:
                for frame in reader:
                    writer.write(frame)
    assert any("alpha" in r.getMessage() and "opaque" in r.getMessage() for r in caplog.records)
    caplog.clear()
    opaque = probe(media.cfr_clip(tmp_path, num_frames=2))
    with caplog.at_level(logging.WARNING, logger="plugin.writer"):
        VideoWriter(tmp_path / "o2.mp4", opaque, OutputConfig("ffv1")).abort()
    assert not any("alpha" in r.getMessage() for r in caplog.records)
