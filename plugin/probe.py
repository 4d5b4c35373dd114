"""What a video is before it is read: its streams, timing, colour and frame index (``probe``).

See ``plugin/video.py`` for the conventions (frame numbering, pts, orientation, colour). The index
maps frame numbers to pts and keyframes: built by demuxing the video stream's packets (no
decoding), one frame per packet that is neither empty, corrupt nor marked discard, which is exact
for every codec that puts one frame in a packet; only when packets carry no pts (raw elementary
streams) does indexing fall back to decoding every frame. A folder of numbered PNG or JPEG files
is indexed as a clip: files sorted naturally by name, pts = index, time base ``1 / fps``.

Frame size limit: a frame larger than :data:`MAX_FRAME_PIXELS` (8192 x 8192 = 67.1 Mpx; DCI 8K
is 35.4 Mpx) is refused with an :class:`InputError` naming the file and the limit, from the size
the container or image header declares, before any frame is decoded. Memory then stays bounded
whatever a file claims: a 10 kB PNG can declare 9000 x 9000 pixels, and decoding and converting
it took 3.3 GB. At the limit one RGB frame is 201 MB.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from plugin.colour import display_matrix as _display_matrix
from plugin.colour import orientation as _orientation
from plugin.colour import resolve_colour as _resolve_colour
from tracking.errors import InputError, TruncatedInputError

#: Image files read as frames of an image-sequence folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Default frame rate of an image sequence (DeepFaceLab's frames carry none).
DEFAULT_SEQUENCE_FPS = Fraction(25)
#: Largest frame (width x height, in pixels) deltaface reads; larger inputs are refused.
MAX_FRAME_PIXELS = 8192 * 8192

_RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}
_SPACE_NAMES = {0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
_PRIMARIES_NAMES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m",
                    7: "smpte240m", 8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431",
                    12: "smpte432", 22: "ebu3213"}
_TRC_NAMES = {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
              8: "linear", 11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10",
              15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}


@dataclass(frozen=True)
class StreamInfo:
    """A non-video (or secondary video) stream of the container, described for reports.

    Attributes:
        index: the stream's index in the container.
        kind: ``"audio"``, ``"subtitle"``, ``"data"``, ``"video"`` or ``"attachment"``.
        codec_name: FFmpeg codec name (``"aac"``, ``"mov_text"``, ...), ``""`` if none.
        time_base: the stream's time base in seconds per tick.
        language: ISO 639 language tag, ``""`` if none.
        description: one line for humans, e.g. ``"aac 44100 Hz 2 ch"``.
    """

    index: int
    kind: str
    codec_name: str
    time_base: Fraction | None
    language: str
    description: str


#: ``AVFieldOrder`` codes of interlaced streams: TT, BB, TB, BT.
INTERLACED_FIELD_ORDERS = (2, 3, 4, 5)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a clip (a container's main video stream or an image folder).

    Attributes:
        path: the file or folder.
        width: display width in pixels (after rotation).
        height: display height in pixels (after rotation).
        num_frames: frames that can be decoded (exact; see the module docstring).
        time_base: seconds per pts tick of the video stream.
        average_rate: mean frame rate in frames per second.
        start_pts: pts of frame 0 (None only for streams without timestamps).
        duration_s: seconds from the start of frame 0 to the end of the last frame.
        codec_name: FFmpeg decoder name (``"h264"``, ``"png"``, ...).
        pix_fmt: decoded pixel format (``"yuv420p"``, ``"yuv420p10le"``, ``"rgb24"``, ...).
        bit_depth: bits per sample of the first component.
        rotation: counter-clockwise degrees of the display matrix (0, 90, 180 or 270), as PyAV's
            ``VideoFrame.rotation`` and ``VideoStream.set_display_rotation`` use it.
        mirrored: the display matrix also flips the image.
        color_range: FFmpeg ``AVColorRange`` code of the stream (0 unknown, 1 tv, 2 pc).
        color_space: FFmpeg ``AVColorSpace`` code (1 bt709, 2 unknown, 5/6 bt601, 9 bt2020nc...).
        color_primaries: FFmpeg ``AVColorPrimaries`` code.
        color_trc: FFmpeg ``AVColorTransferCharacteristic`` code.
        yuv_matrix: matrix used to convert to RGB (``"bt709"``, ``"bt601"``, ``"bt2020"``,
            ``"smpte240m"``, ``"fcc"``, or ``"rgb"`` for RGB and grey formats).
        full_range: whether the YUV samples were read as full range.
        sample_aspect_ratio: pixel aspect ratio in display orientation (1 for square pixels).
        is_vfr: pts steps between frames differ by more than one tick.
        has_audio: the container has at least one audio stream.
        streams: every other stream of the container.
        stream_index: index of the video stream in the container (0 for image folders).
        container_format: FFmpeg demuxer name, or ``"image_sequence"``.
        stems: for image sequences, each frame's file stem in frame order; else empty.
        complete: False when indexing found the stream cut short or damaged; frames past
            ``num_frames`` are then lost, and reading reports it (see :class:`VideoReader`).
        declared_frames: frame count the container header declares, when it declares one.
        field_order: FFmpeg ``AVFieldOrder`` code of the stream (0 unknown, 1 progressive, 2 top
            field first, 3 bottom first, 4 and 5 the mixed orders). Interlaced frames are read
            woven (both fields in one frame, as decoders give them).
    """

    path: Path
    width: int
    height: int
    num_frames: int
    time_base: Fraction
    average_rate: Fraction
    start_pts: int | None
    duration_s: float
    codec_name: str
    pix_fmt: str
    bit_depth: int
    rotation: int
    mirrored: bool
    color_range: int
    color_space: int
    color_primaries: int
    color_trc: int
    yuv_matrix: str
    full_range: bool
    sample_aspect_ratio: Fraction
    is_vfr: bool
    has_audio: bool
    streams: tuple[StreamInfo, ...] = ()
    stream_index: int = 0
    container_format: str = ""
    stems: tuple[str, ...] = ()
    complete: bool = True
    declared_frames: int | None = None
    field_order: int = 0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.num_frames < 0 or self.time_base <= 0:
            raise ValueError(f"{self.path}: invalid video info {self.width}x{self.height}, "
                             f"{self.num_frames} frames, time base {self.time_base}")

    @property
    def interlaced(self) -> bool:
        """The stream is interlaced (its field order says so)."""
        return self.field_order in INTERLACED_FIELD_ORDERS

    @property
    def fields_are_rows(self) -> bool:
        """Interlaced, with its fields on the rows of the frames as read (not displayed turned by
        90 or 270 degrees, which makes them columns): what editing field by field needs."""
        return self.interlaced and self.rotation % 180 == 0

    @property
    def top_field_first(self) -> bool:
        """Of an interlaced stream: the top field is the earlier one."""
        return self.field_order in (2, 4)

    @property
    def is_image_sequence(self) -> bool:
        return self.container_format == "image_sequence"

    @property
    def color_description(self) -> str:
        """Colour tags as ffprobe names them: ``"range/space/primaries/trc"``."""
        return "/".join((
            _RANGE_NAMES.get(self.color_range, str(self.color_range)),
            _SPACE_NAMES.get(self.color_space, str(self.color_space)),
            _PRIMARIES_NAMES.get(self.color_primaries, str(self.color_primaries)),
            _TRC_NAMES.get(self.color_trc, str(self.color_trc)),
        ))


@dataclass(frozen=True)
class _Index:
    """Internal: the probe result plus what random access needs."""

    info: VideoInfo
    pts: tuple[int, ...]  # frame index -> pts (sorted); empty for timestamp-less streams
    keys: tuple[int, ...]  # sorted pts of keyframe packets
    damage: str = ""  # why the stream is incomplete ("" when complete)
    ops: tuple[int, bool, bool] = (0, False, False)  # display orientation, see _orientation
    files: tuple[Path, ...] = ()  # image sequences: one file per frame


# ---------------------------------------------------------------------------------------------
# Indexing


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file or an image-sequence folder")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({exc.strerror or exc}); if it is a copy "
                         "still being written or cut short, its index may be missing") from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            if s.codec_context is None:
                raise InputError(f"{path}: FFmpeg has no decoder for its video stream")
            return s
    raise InputError(f"{path}: has no video stream")


def _check_frame_size(path: Path, width: int, height: int) -> None:
    """Refuse a frame above :data:`MAX_FRAME_PIXELS` (0 means unknown: checked after decoding)."""
    if width * height > MAX_FRAME_PIXELS:
        raise InputError(f"{path}: frames are {width}x{height}, above deltaface's limit of "
                         f"{MAX_FRAME_PIXELS / 1e6:.1f} Mpx (8192x8192); scale it down first")


def _describe(s: av.stream.Stream) -> StreamInfo:
    cc = s.codec_context
    name = cc.name if cc is not None else ""
    desc = f"{s.type} {name}".strip()
    if s.type == "audio" and cc is not None:
        desc += f" {cc.sample_rate} Hz {cc.channels} ch"
    return StreamInfo(s.index, s.type, name, s.time_base, s.language or "", desc)


def _first_frame(path: Path, stream_index: int) -> av.VideoFrame:
    with av.open(str(path), mode="r") as c:
        v = c.streams[stream_index]
        try:
            for frame in c.decode(v):
                _check_frame_size(path, frame.width, frame.height)
                return frame
        except av.error.FFmpegError as exc:
            raise TruncatedInputError(f"{path}: frame 0 cannot be decoded ({exc.strerror or exc})",
                                      stopped_at=0) from exc
    raise TruncatedInputError(f"{path}: the video stream holds no decodable frame", stopped_at=0)


def _parse_duration_tag(text: str) -> float | None:
    m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", text.strip())
    return None if m is None else int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


@dataclass
class _Scan:
    """Internal: what demuxing the video packets found."""

    pts: list[int] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    last_duration: int = 0
    damage: str = ""
    no_pts: bool = False


def _scan_packets(c: av.container.InputContainer, v: av.VideoStream) -> _Scan:
    """Demux every video packet: frame pts, keyframes, and whether the stream was cut short."""
    scan = _Scan()
    bad_dts: int | None = None
    last_dts: int | None = None
    discarded = 0
    try:
        for pkt in c.demux(v):
            if pkt.size == 0 and pkt.dts is None:
                continue  # the demuxer's end-of-stream marker
            if pkt.is_corrupt:
                scan.damage = f"packet {len(scan.pts) + discarded} is incomplete"
                bad_dts = pkt.dts
                break
            if pkt.is_discard:  # decoded as a reference, never shown (edit-list pre-roll)
                discarded += 1
                continue
            if pkt.pts is None:
                scan.no_pts = True
            else:
                scan.pts.append(pkt.pts)
                if pkt.is_keyframe:
                    scan.keys.append(pkt.pts)
            scan.last_duration = pkt.duration or 0
            last_dts = pkt.dts if pkt.dts is not None else last_dts
    except av.error.FFmpegError as exc:
        scan.damage = f"demuxing failed after {len(scan.pts)} frames ({exc.strerror or exc})"
    scan.pts.sort()
    scan.keys.sort()
    found = len(scan.pts) + discarded
    if not scan.damage and v.frames and found < v.frames:
        scan.damage = f"header declares {v.frames} frames, file holds {found}"
    if not scan.damage and len(scan.pts) > 1:
        # Matroska has no frame count, but FFmpeg-written files declare each track's duration.
        tag = next((val for key, val in v.metadata.items() if key.upper() == "DURATION"), "")
        declared_end = _parse_duration_tag(tag) if tag else None
        tb = v.time_base
        step = float(np.median(np.diff(scan.pts)) * tb)
        end = float((scan.pts[-1] + scan.last_duration) * tb)
        if declared_end is not None and declared_end - end > 1.5 * step:
            scan.damage = f"track declares {declared_end:.3f} s but ends at {end:.3f} s"
    if scan.damage and scan.pts:
        # Keep only frames that no lost packet can precede in presentation order: a packet
        # decoded after the last good one has a dts (hence a pts) past the last good dts.
        cutoff = bad_dts if bad_dts is not None else (None if last_dts is None else last_dts + 1)
        if cutoff is not None:
            scan.pts = scan.pts[: bisect_left(scan.pts, cutoff)]
            scan.keys = [k for k in scan.keys if k < cutoff]
    return scan


def _index_container(path: Path) -> _Index:
    with _open(path) as c:
        v = _video_stream(c, path)
        _check_frame_size(path, v.codec_context.width, v.codec_context.height)
        tb = v.time_base or Fraction(1, 1)
        scan = _scan_packets(c, v)
        rate = v.average_rate or v.guessed_rate
        sar = v.sample_aspect_ratio
        field_order = int(v.codec_context.field_order or 0)
        codec_name = v.codec_context.name
        declared = v.frames or None
        index = v.index
        others = tuple(_describe(s) for s in c.streams if s.index != v.index)
        fmt_name = c.format.name
    first = _first_frame(path, index)
    pts = [] if scan.no_pts else scan.pts
    count = len(pts)
    if scan.no_pts:  # raw streams without timestamps: count by decoding
        count, failure = _count_by_decoding(path, index)
        scan.damage = scan.damage or failure
    deltas = np.diff(pts) if len(pts) > 1 else np.zeros(0, np.int64)
    last = scan.last_duration or (int(np.median(deltas)) if deltas.size else 0)
    duration_s = float((pts[-1] - pts[0] + last) * tb) if pts else 0.0
    if not rate and len(pts) > 1 and pts[-1] > pts[0]:
        rate = Fraction(len(pts) - 1) / ((pts[-1] - pts[0]) * tb)
    matrix, full = _resolve_colour(first)
    rotation, mirrored, ops = _orientation(_display_matrix(first), path)
    w, h = (first.height, first.width) if ops[0] % 2 else (first.width, first.height)
    info = VideoInfo(
        path=path, width=w, height=h, num_frames=count, time_base=Fraction(tb),
        average_rate=Fraction(rate or 25), start_pts=pts[0] if pts else None,
        duration_s=duration_s, codec_name=codec_name, pix_fmt=first.format.name,
        bit_depth=first.format.components[0].bits, rotation=rotation, mirrored=mirrored,
        color_range=int(first.color_range), color_space=int(first.colorspace),
        color_primaries=int(first.color_primaries), color_trc=int(first.color_trc),
        yuv_matrix=matrix, full_range=full,
        sample_aspect_ratio=(1 / Fraction(sar) if ops[0] % 2 else Fraction(sar)) if sar else Fraction(1),
        is_vfr=bool(deltas.size and int(deltas.max() - deltas.min()) > 1),
        has_audio=any(s.kind == "audio" for s in others), streams=others, stream_index=index,
        container_format=fmt_name, complete=not scan.damage, declared_frames=declared,
        field_order=field_order,
    )
    return _Index(info, tuple(pts), tuple(scan.keys), scan.damage, ops)


def _count_by_decoding(path: Path, stream_index: int) -> tuple[int, str]:
    """Frames decodable from the start, and why decoding stopped early ("" if it did not)."""
    n = 0
    with av.open(str(path), mode="r") as c:
        try:
            for _ in c.decode(c.streams[stream_index]):
                n += 1
        except av.error.FFmpegError as exc:
            return n, f"decoding failed after {n} frames ({exc.strerror or exc})"
    return n, ""


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _index_folder(path: Path, fps: Fraction) -> _Index:
    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                    and not p.name.startswith(".")), key=lambda p: _natural_key(p.name))
    if not files:
        raise InputError(f"{path}: folder holds no PNG or JPEG frames")
    if fps <= 0:
        raise InputError(f"{path}: image-sequence frame rate must be positive, got {fps}")
    first = _decode_image(files[0], 0)
    matrix, full = _resolve_colour(first)
    tb = 1 / fps
    info = VideoInfo(
        path=path, width=first.width, height=first.height, num_frames=len(files), time_base=tb,
        average_rate=fps, start_pts=0, duration_s=float(len(files) * tb),
        codec_name="png" if files[0].suffix.lower() == ".png" else "mjpeg",
        pix_fmt=first.format.name, bit_depth=first.format.components[0].bits, rotation=0,
        mirrored=False, color_range=int(first.color_range), color_space=int(first.colorspace),
        color_primaries=int(first.color_primaries), color_trc=int(first.color_trc),
        yuv_matrix=matrix, full_range=full, sample_aspect_ratio=Fraction(1), is_vfr=False,
        has_audio=False, container_format="image_sequence", stems=tuple(p.stem for p in files),
    )
    return _Index(info, tuple(range(len(files))), tuple(range(len(files))), files=tuple(files))


def _decode_image(file: Path, index: int) -> av.VideoFrame:
    try:
        with av.open(str(file), mode="r") as c:
            if c.streams.video:
                cc = c.streams.video[0].codec_context
                _check_frame_size(file, cc.width, cc.height)
            for frame in c.decode(video=0):
                _check_frame_size(file, frame.width, frame.height)
                return frame
    except av.error.FFmpegError as exc:
        raise TruncatedInputError(f"{file}: frame {index} cannot be decoded ({exc.strerror or exc})",
                                  stopped_at=index) from exc
    raise TruncatedInputError(f"{file}: frame {index} holds no image", stopped_at=index)


def _index(path: str | os.PathLike[str], fps: Fraction | float | int) -> _Index:
    p = Path(path)
    if p.is_dir():
        return _index_folder(p, Fraction(fps).limit_denominator(1_001_000))
    return _index_container(p)


def probe(path: str | os.PathLike[str], fps: Fraction | float | int = DEFAULT_SEQUENCE_FPS) -> VideoInfo:
    """Describe a video file or an image-sequence folder without decoding it all.

    Args:
        path: a container file, or a folder of numbered PNG/JPEG frames.
        fps: frame rate for an image-sequence folder (ignored for containers).

    Returns:
        The clip's :class:`VideoInfo`.

    Raises:
        InputError: the path is missing, not a video, or has no video stream or no frames.
        TruncatedInputError: not even frame 0 can be decoded.
    """
    return _index(path, fps).info
