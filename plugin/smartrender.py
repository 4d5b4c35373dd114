"""Frame-accurate re-render of a video output: re-encode only the GOPs that hold changed frames.

Given the previous render of a clip (written by deltaface) and a frame range to render again,
:func:`smart_rerender` finds the GOPs of the previous output's video stream that hold frames of
the range, renders exactly those GOPs' frames again from the input (through the same stages) with
the same encoder settings, and writes a new file in which every other packet (video, audio,
subtitles, data) is copied byte for byte from the previous render. The re-encoded packets take
the decode timestamps of the packets they replace, so the stitched stream keeps the previous
render's timing exactly.

It refuses (and the caller renders the whole clip instead, saying why in one line) when the
stream does not allow it: no previous output, a codec, size, frame count or timing that differs
from the input and the settings, GOPs that are not closed (an H.264 keyframe that is not an IDR,
or a frame displayed across a GOP boundary, as a B-frame pyramid crossing it would be), or new
segments whose encoder settings or extradata differ from the previous render's (another crf or
preset, another x264). deltaface's own H.264 output has closed GOPs of a fixed frame count
(:func:`plugin.writer.x264_gop_params`); intra-only codecs (FFV1 with ``g=1``, ProRes) have
one-frame GOPs.

The new file is written under a temporary name and renamed over the previous one only when
complete (:class:`plugin.output.AtomicOutput`); the input and the previous output are only read.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from plugin.deep import DeepSources
from plugin.output import AtomicOutput, temp_path_for
from plugin.pipeline import StageChain
from plugin.provenance import PROVENANCE_KEY, apply_provenance, merge_ranges, read_provenance
from plugin.video import VideoInfo, VideoReader
from plugin.writer import OutputConfig, VideoWriter
from tracking.errors import DeltafaceError, OutputError
from tracking.frame import Frame
from tracking.stage import Stage

_FORMAT = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".nut": "nut"}
_DECODER = {"h264": "h264", "ffv1": "ffv1", "prores": "prores"}
_SKIP_METADATA = {"major_brand", "minor_version", "compatible_brands", "encoder", "comment", PROVENANCE_KEY}
#: H.264 NAL unit types: coded slice of an IDR picture, and SEI.
_NAL_IDR, _NAL_SEI = 5, 6
#: x264 writes its settings into an unregistered-user-data SEI of the first frame after this.
_X264_OPTIONS = b"options: "


class NotStitchable(Exception):
    """Why the previous output cannot be re-rendered in part (one line); the caller re-renders all."""


@dataclass(frozen=True)
class StreamLayout:
    """The video packets of an encoded file in decode order, grouped into GOPs.

    Attributes:
        time_base: seconds per tick of ``pts`` and ``dts``.
        pts, dts: per packet, decode order.
        keyframe: per packet, whether it starts a GOP.
        frame_pts: pts in display order (index = frame index).
        gops: per GOP, ``(first packet, end packet)`` in decode order (end exclusive).
        gop_frames: per GOP, ``(first frame, last frame)`` in display order (inclusive).
        extradata: the codec's global header (SPS/PPS for H.264).
    """

    time_base: Fraction
    pts: tuple[int, ...]
    dts: tuple[int | None, ...]
    keyframe: tuple[bool, ...]
    frame_pts: tuple[int, ...]
    gops: tuple[tuple[int, int], ...]
    gop_frames: tuple[tuple[int, int], ...]
    extradata: bytes
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    first_packet: bytes


@dataclass(frozen=True)
class StitchResult:
    """What a partial re-render did.

    Attributes:
        output: the output path.
        frames_rendered: inclusive frame ranges rendered again (whole GOPs).
        gops_reencoded, gops_total: GOPs re-encoded, and in the stream.
        packets_reencoded, packets_copied: video packets re-encoded, and copied byte for byte.
        other_packets_copied: audio, subtitle and data packets copied.
        seconds: wall time.
    """

    output: Path
    frames_rendered: list[list[int]]
    gops_reencoded: int
    gops_total: int
    packets_reencoded: int
    packets_copied: int
    other_packets_copied: int
    seconds: float


def _nal_units(data: bytes, length_size: int) -> list[bytes]:
    """NAL units of an AVCC (length-prefixed) H.264 packet; ``[]`` when the lengths do not fit."""
    out, i = [], 0
    while i + length_size <= len(data):
        n = int.from_bytes(data[i:i + length_size], "big")
        i += length_size
        if n == 0 or i + n > len(data):
            return []
        out.append(data[i:i + n])
        i += n
    return out if i == len(data) else []


def _avcc_length_size(extradata: bytes) -> int:
    if len(extradata) < 7 or extradata[0] != 1:
        raise NotStitchable("the H.264 stream is not stored length-prefixed (no avcC header)")
    return (extradata[4] & 3) + 1


def x264_options(packet: bytes, extradata: bytes) -> bytes | None:
    """The settings string x264 wrote into an SEI of this (first) packet, or None."""
    for nal in _nal_units(packet, _avcc_length_size(extradata)):
        if nal and nal[0] & 0x1F == _NAL_SEI and _X264_OPTIONS in nal:
            tail = nal[nal.index(_X264_OPTIONS):]
            return tail.split(b"\x00", 1)[0]
    return None


def read_layout(path: Path) -> StreamLayout:
    """The video stream's packets and GOPs (module docstring).

    Raises:
        NotStitchable: unreadable, no video, a packet without timestamps, or a GOP that is not
            closed (a frame displayed outside its GOP's span, or an H.264 keyframe that is no IDR).
    """
    try:
        with av.open(str(path), mode="r") as c:
            if not c.streams.video:
                raise NotStitchable(f"{path.name} has no video stream")
            v = c.streams.video[0]
            cc = v.codec_context
            extradata = bytes(cc.extradata or b"")
            pts, dts, key, first = [], [], [], b""
            for p in c.demux(v):
                if p.size == 0 and p.dts is None:
                    continue
                if p.pts is None:
                    raise NotStitchable(f"{path.name}: a video packet has no pts")
                if not pts:
                    first = bytes(p)
                pts.append(p.pts)
                dts.append(p.dts)
                key.append(bool(p.is_keyframe))
                if v.codec_context.name == "h264" and p.is_keyframe:
                    types = {n[0] & 0x1F for n in _nal_units(bytes(p), _avcc_length_size(extradata)) if n}
                    if _NAL_IDR not in types:
                        raise NotStitchable("the previous output has open GOPs (a keyframe that is not an IDR)")
            tb, name, w, h, fmt = v.time_base, cc.name, cc.width, cc.height, cc.format.name if cc.format else None
    except (av.error.FFmpegError, OSError) as e:
        raise NotStitchable(f"{path.name} cannot be read ({e})") from None
    if not pts or not key[0]:
        raise NotStitchable(f"{path.name}: the video stream does not start with a keyframe")
    order = sorted(pts)
    if len(set(order)) != len(order):
        raise NotStitchable(f"{path.name}: two video packets share a pts")
    frame_of = {p: i for i, p in enumerate(order)}
    starts = [i for i, k in enumerate(key) if k] + [len(pts)]
    gops, spans = [], []
    expected_first = 0
    for a, b in zip(starts, starts[1:]):
        frames = sorted(frame_of[p] for p in pts[a:b])
        if frames[0] != expected_first or frames != list(range(frames[0], frames[0] + len(frames))) \
                or frame_of[pts[a]] != frames[0]:
            raise NotStitchable("a GOP of the previous output is not closed (frames displayed across a "
                                "keyframe, e.g. a B-frame pyramid crossing it)")
        gops.append((a, b))
        spans.append((frames[0], frames[-1]))
        expected_first = frames[-1] + 1
    return StreamLayout(tb, tuple(pts), tuple(dts), tuple(key), tuple(order), tuple(gops), tuple(spans),
                        extradata, name, w, h, fmt, first)


def splice_provenance(old: Mapping[str, Any] | None, new: Mapping[str, Any],
                      spans: Sequence[Sequence[int]]) -> dict[str, Any]:
    """The provenance tag of an output whose frames in ``spans`` were rendered again.

    Inside the spans the new render's edited ranges hold, outside them the old tag's.

    Args:
        old: the previous output's tag (None: none; its ranges count as empty).
        new: the tag of the new render of the whole clip (:func:`plugin.provenance.build_provenance`).
        spans: inclusive ``[start, end]`` frame ranges rendered again.

    Returns:
        ``new`` with ``edited_ranges``, ``edited_ranges_by_face`` and ``faces_edited`` merged, and
        ``rerendered_ranges`` (every span rendered again since the last full render) added.
    """
    spans = merge_ranges(spans)

    def outside(ranges: Sequence[Sequence[int]]) -> list[list[int]]:
        out = []
        for s, e in merge_ranges(ranges):
            pieces = [(s, e)]
            for a, b in spans:
                pieces = [p for lo, hi in pieces for p in ((lo, min(hi, a - 1)), (max(lo, b + 1), hi))
                          if p[0] <= p[1]]
            out += [list(p) for p in pieces]
        return out

    def inside(ranges: Sequence[Sequence[int]]) -> list[list[int]]:
        return [[max(s, a), min(e, b)] for s, e in merge_ranges(ranges) for a, b in spans
                if max(s, a) <= min(e, b)]

    old = old or {}
    tag = dict(new)
    tag["edited_ranges"] = merge_ranges(outside(old.get("edited_ranges") or [])
                                        + inside(new.get("edited_ranges") or []))
    faces = set(old.get("edited_ranges_by_face") or {}) | set(new.get("edited_ranges_by_face") or {})
    by_face = {}
    for face in sorted(faces, key=lambda f: (len(f), f)):
        merged = merge_ranges(outside((old.get("edited_ranges_by_face") or {}).get(face, []))
                              + inside((new.get("edited_ranges_by_face") or {}).get(face, [])))
        if merged:
            by_face[face] = merged
    tag["edited_ranges_by_face"] = by_face
    tag["faces_edited"] = bool(tag["edited_ranges"])
    tag["rerendered_ranges"] = merge_ranges([*(old.get("rerendered_ranges") or []), *spans])
    return tag


def affected_runs(layout: StreamLayout, start: int, end: int) -> list[tuple[int, int]]:
    """Runs of consecutive GOPs holding frames ``start..end``, as ``(first GOP, last GOP)``."""
    hit = [g for g, (a, b) in enumerate(layout.gop_frames) if a <= end and b >= start]
    runs: list[tuple[int, int]] = []
    for g in hit:
        if runs and runs[-1][1] == g - 1:
            runs[-1] = (runs[-1][0], g)
        else:
            runs.append((g, g))
    return runs


def _check_matches(layout: StreamLayout, info: VideoInfo, frame_pts: Sequence[int], config: OutputConfig) -> None:
    if layout.codec != _DECODER.get(config.codec):
        raise NotStitchable(f"the previous output is {layout.codec}, the project asks for {config.codec}")
    if (layout.width, layout.height) != (info.width, info.height):
        raise NotStitchable(f"the previous output is {layout.width}x{layout.height}, the input "
                            f"{info.width}x{info.height}")
    if len(layout.frame_pts) != len(frame_pts):
        raise NotStitchable(f"frame count differs: the previous output has {len(layout.frame_pts)} frames, "
                            f"the input {len(frame_pts)}")
    times_prev = [p * layout.time_base for p in layout.frame_pts]
    times_in = [p * info.time_base for p in frame_pts]
    if times_prev != times_in:
        bad = next(i for i, (a, b) in enumerate(zip(times_prev, times_in)) if a != b)
        raise NotStitchable(f"timing differs from the input at frame {bad}")


def _encode_run(path: Path, info: VideoInfo, config: OutputConfig, stages: Sequence[Stage[Frame, Frame]],
                first: int, last: int, tag: Mapping[str, Any]) -> None:
    """Render frames ``first..last`` through ``stages`` into a new file at ``path``."""
    chain = StageChain(stages)
    # Video only: the splice takes this file's video packets; the audio stays the previous output's.
    sources = DeepSources()  # 16-bit images of a deep source, as in plugin.pipeline.run_render
    with VideoReader(info.path) as reader, VideoWriter(path, reader, config, tag, copy_streams=False) as writer:
        for frame in reader.frames(first, last + 1, deep=writer.deep):
            for out in chain.push(sources.keep(frame)):
                writer.write(sources.carry(out))
        for out in chain.flush():
            writer.write(sources.carry(out))


def _segment_packets(path: Path) -> tuple[StreamLayout, list[bytes]]:
    layout = read_layout(path)
    with av.open(str(path), mode="r") as c:
        data = [bytes(p) for p in c.demux(c.streams.video[0]) if not (p.size == 0 and p.dts is None)]
    return layout, data


def smart_rerender(
    previous: Path,
    info: VideoInfo,
    config: OutputConfig,
    stages: Sequence[Stage[Frame, Frame]],
    start: int,
    end: int,
    tag: Mapping[str, Any],
) -> StitchResult:
    """Render frames ``start..end`` again into ``previous``, re-encoding only their GOPs.

    Args:
        previous: the previous render (replaced by the new file on success).
        info: the input clip.
        config: the output settings (must be those of the previous render).
        stages: the render stages; frames of the affected GOPs are pushed through them in order
            (stages must not depend on frames before the first one pushed).
        start, end: inclusive frame range to render again.
        tag: provenance of the new render as a whole; it is spliced with the previous output's
            (:func:`splice_provenance`) over the frames re-encoded.

    Returns:
        What was re-encoded and copied.

    Raises:
        NotStitchable: the previous output cannot be re-rendered in part (the reason, one line);
            nothing was changed.
        OutputError: the new file could not be written; the previous output is unchanged.
    """
    started = time.perf_counter()
    if not previous.is_file():
        raise NotStitchable("no previous output to re-render in part")
    suffix = previous.suffix.lower()
    if suffix not in _FORMAT:
        raise NotStitchable(f"{suffix or 'this kind of'} output cannot be re-rendered in part")
    with VideoReader(info.path) as reader:
        frame_pts = reader.frame_pts
    layout = read_layout(previous)
    _check_matches(layout, info, frame_pts, config)
    runs = affected_runs(layout, start, end)
    replace: dict[int, tuple[int, bytes, bool]] = {}
    spans = []
    for g0, g1 in runs:
        f0, f1 = layout.gop_frames[g0][0], layout.gop_frames[g1][1]
        p0, p1 = layout.gops[g0][0], layout.gops[g1][1]
        spans.append([f0, f1])
        seg = temp_path_for(previous)
        try:
            _encode_run(seg, info, dataclasses.replace(config, overwrite=False), stages, f0, f1, tag)
            seg_layout, data = _segment_packets(seg)
        finally:
            seg.unlink(missing_ok=True)
        if layout.codec == "h264":
            old_opts = x264_options(layout.first_packet, layout.extradata)
            new_opts = x264_options(seg_layout.first_packet, seg_layout.extradata)
            if old_opts is None or old_opts != new_opts:
                raise NotStitchable("the encoder settings differ from the previous render's (x264 options)")
        _check_segment(layout, seg_layout, data, g0, g1)
        for k, j in enumerate(range(p0, p1)):
            pts = seg_layout.pts[k]
            dts = layout.dts[j]
            if dts is not None and dts > pts:
                raise NotStitchable("the new GOPs' frame reordering does not fit the previous timestamps")
            replace[j] = (pts, data[k], seg_layout.keyframe[k])
    try:
        old_tag = read_provenance(previous)
    except DeltafaceError:  # an unreadable tag counts as none
        old_tag = None
    new_tag = splice_provenance(old_tag, tag, spans)
    copied_video, copied_other = _stitch(previous, layout, replace, new_tag, info)
    return StitchResult(previous.absolute(), spans, sum(b - a + 1 for a, b in runs), len(layout.gops),
                        len(replace), copied_video, copied_other, time.perf_counter() - started)


def _check_segment(layout: StreamLayout, seg: StreamLayout, data: list[bytes], g0: int, g1: int) -> None:
    p0, p1 = layout.gops[g0][0], layout.gops[g1][1]
    f0, f1 = layout.gop_frames[g0][0], layout.gop_frames[g1][1]
    if len(data) != p1 - p0 or len(seg.pts) != p1 - p0:
        raise NotStitchable(f"the new encode of frames {f0}-{f1} has {len(data)} packets, the previous "
                            f"{p1 - p0}")
    if seg.time_base != layout.time_base:
        raise NotStitchable("the new encode's time base differs from the previous render's")
    if list(seg.frame_pts) != list(layout.frame_pts[f0:f1 + 1]):
        raise NotStitchable(f"the new encode of frames {f0}-{f1} has other timestamps")
    if seg.extradata != layout.extradata:
        raise NotStitchable("the encoder's extradata (e.g. SPS/PPS) differs from the previous render's")
    if list(seg.keyframe) != list(layout.keyframe[p0:p1]):
        raise NotStitchable(f"the new encode of frames {f0}-{f1} places keyframes elsewhere (another GOP length)")


def _stitch(previous: Path, layout: StreamLayout, replace: Mapping[int, tuple[int, bytes, bool]],
            tag: Mapping[str, Any], info: VideoInfo) -> tuple[int, int]:
    """Write the stitched file beside ``previous`` and rename it over it. Returns packets copied."""
    suffix = previous.suffix.lower()
    options = {}
    if suffix in (".mp4", ".mov"):
        options["movflags"] = "use_metadata_tags"
        if layout.time_base.numerator == 1:
            options["video_track_timescale"] = str(layout.time_base.denominator)
    copied_video = copied_other = 0
    atomic = AtomicOutput(previous, overwrite=True, inputs=[info.path])
    try:
        with av.open(str(previous), mode="r") as src, \
                av.open(str(atomic.temp), mode="w", format=_FORMAT[suffix], options=options) as out:
            vin = src.streams.video[0]
            smap: dict[int, av.stream.Stream] = {}
            for s in src.streams:
                if s is not vin and (s.type not in ("audio", "subtitle", "data") or s.codec_context is None
                                     or s.name is None):
                    continue  # e.g. a MOV timecode track: re-created from the video's metadata
                try:
                    o = out.add_stream_from_template(s)
                except (ValueError, av.error.FFmpegError) as e:
                    raise NotStitchable(f"stream {s.index} ({s.type}) cannot be copied ({e})") from None
                o.metadata.update(s.metadata)
                o.disposition = s.disposition
                if s is vin and vin.average_rate:  # MOV re-creates its timecode track from it
                    o.codec_context.framerate = vin.average_rate
                smap[s.index] = o
            for key, value in src.metadata.items():
                if key.lower() not in _SKIP_METADATA:
                    out.metadata[key] = value
            apply_provenance(out.metadata, tag)
            j = 0
            for pkt in src.demux(list(src.streams[i] for i in smap)):
                if pkt.size == 0 and pkt.dts is None:
                    continue
                if pkt.stream_index == vin.index:
                    if j in replace:
                        pts, data, key = replace[j]
                        new = av.Packet(data)
                        new.pts, new.dts, new.time_base = pts, pkt.dts, pkt.time_base
                        new.is_keyframe = key
                        new.stream = smap[vin.index]
                        out.mux(new)
                    else:
                        pkt.stream = smap[vin.index]
                        out.mux(pkt)
                        copied_video += 1
                    j += 1
                else:
                    pkt.stream = smap[pkt.stream_index]
                    out.mux(pkt)
                    copied_other += 1
        check = read_layout(atomic.temp)
        if check.frame_pts != layout.frame_pts:
            raise OutputError(f"{previous}: the stitched file's video timestamps differ from the previous render's")
        atomic.commit()
    except (av.error.FFmpegError, OSError) as e:
        atomic.abort()
        raise OutputError(f"{previous}: could not write the re-rendered file ({e}); the previous output "
                          "is unchanged") from e
    except BaseException:
        atomic.abort()
        raise
    return copied_video, copied_other
