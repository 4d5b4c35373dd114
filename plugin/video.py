"""Frame-accurate video reading with PyAV: exact counts and pts, random access, display-ready RGB.

Conventions:
    * Frames are numbered 0, 1, ... in presentation order. Frame ``i`` has the ``i``-th smallest
      pts among the video stream's packets (packets the demuxer marks as discarded, such as
      edit-list pre-roll, are not frames).
    * ``Frame.pts`` is the container's value in the stream's time base, never rescaled.
    * Images are ``(H, W, 3)`` uint8 RGB in display orientation: the container's display matrix
      (rotation, mirroring) is applied, so ``VideoInfo.width`` / ``height`` are display sizes.
    * YUV is converted with the matrix and range the stream declares, not swscale's defaults.
      An untagged stream is read as BT.601 (what FFmpeg assumes, and how the FFmpeg pipes of
      DeepFaceLab and FaceFusion made their untagged files), limited range unless the range tag
      or a full-range ("j") pixel format says otherwise; ``VideoInfo.yuv_matrix`` and
      ``VideoInfo.full_range`` say what was used. Any bit depth and chroma layout is read
      (10-bit, 4:2:2, 4:4:4) and converted to 8-bit RGB in one swscale step.

How frames are counted: by demuxing the video stream's packets (no decoding), one frame per
packet that is neither empty, corrupt nor marked discard. This is exact for every codec that puts
one frame in a packet, which is every codec and container deltaface writes or meets (H.264,
HEVC, ProRes, FFV1, PNG, VP9, AV1 in MP4, MOV, MKV, NUT); the reader checks it while decoding and
reports a mismatch as a damaged stream. Only when packets carry no pts (raw elementary streams)
does indexing fall back to decoding every frame. Indexing costs about 40 ms for a 264-frame 720p
clip (demuxing plus decoding frame 0).

A folder of numbered PNG or JPEG files is read as a clip: files sorted naturally by name
(``2.png`` before ``10.png``), pts = index, time base ``1 / fps``; each frame's file stem is kept
in ``VideoInfo.stems``.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import Colorspace, ColorRange, VideoReformatter
from numpy.typing import NDArray

from tracking.errors import InputError, TruncatedInputError
from tracking.frame import Frame

#: Image files read as frames of an image-sequence folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Default frame rate of an image sequence (DeepFaceLab's frames carry none).
DEFAULT_SEQUENCE_FPS = Fraction(25)

# FFmpeg AVColorSpace codes -> swscale matrices; names as ffprobe prints them.
_MATRIX_BY_SPACE = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
_SWS_MATRIX = {
    "bt709": Colorspace.ITU709,
    "bt601": Colorspace.ITU601,
    "fcc": Colorspace.FCC,
    "smpte240m": Colorspace.SMPTE240M,
    "bt2020": Colorspace.BT2020,
}
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

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.num_frames < 0 or self.time_base <= 0:
            raise ValueError(f"{self.path}: invalid video info {self.width}x{self.height}, "
                             f"{self.num_frames} frames, time base {self.time_base}")

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
# Orientation and colour


def _display_matrix(frame: av.VideoFrame) -> NDArray[np.int32] | None:
    try:
        data = frame.side_data.get(SideDataType.DISPLAYMATRIX)
    except (KeyError, ValueError):
        data = None
    if data is None:
        return None
    m = np.frombuffer(bytes(data), dtype=np.int32)
    return m if m.size == 9 else None


def _orientation(m: NDArray[np.int32] | None, path: Path) -> tuple[int, bool, tuple[int, bool, bool]]:
    """Read a display matrix as (ccw rotation, mirrored, (rot90 k, flip rows, flip columns)).

    Follows FFmpeg's own autorotation (fftools ``get_rotation`` and its transpose/flip choice);
    the operations apply in that order with ``np.rot90`` (counter-clockwise for positive k).
    """
    if m is None:
        return 0, False, (0, False, False)
    a, b, c, d = (float(x) / 65536.0 for x in (m[0], m[1], m[3], m[4]))
    s0, s1 = np.hypot(a, c), np.hypot(b, d)
    if s0 == 0 or s1 == 0:
        return 0, False, (0, False, False)
    ccw = -float(np.degrees(np.arctan2(b / s1, a / s0)))  # av_display_rotation_get
    theta = float(-round(ccw))  # clockwise degrees to apply
    theta -= 360 * np.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        ops = (1, True, False) if c > 0 else (-1, False, False)  # transpose / clockwise
    elif abs(theta - 180) < 1:
        ops = (0, d < 0, a < 0)
    elif abs(theta - 270) < 1:
        ops = (-1, True, False) if c < 0 else (1, False, False)  # anti-transpose / ccw
    elif abs(theta) < 1:
        ops = (0, d < 0, False)
    else:
        raise InputError(f"{path}: display rotation of {theta:.0f} degrees is not supported "
                         "(only multiples of 90)")
    return int(round(ccw)) % 360, bool(a * d - b * c < 0), (ops[0], bool(ops[1]), bool(ops[2]))


def _orient(img: NDArray[np.uint8], ops: tuple[int, bool, bool]) -> NDArray[np.uint8]:
    k, flip_rows, flip_cols = ops
    if k:
        img = np.rot90(img, k)
    if flip_rows:
        img = img[::-1]
    if flip_cols:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


def _resolve_colour(frame: av.VideoFrame) -> tuple[str, bool]:
    """The YUV matrix name and full-range flag to read this frame with."""
    fmt = frame.format
    if fmt.is_rgb or len(fmt.components) <= 2 or fmt.has_palette:
        return "rgb", True
    full = frame.color_range == 2 or fmt.name.startswith("yuvj")
    # Unspecified (or YCgCo, which swscale lacks): BT.601, as FFmpeg itself converts and as the
    # untagged files of face-swap tools (FFmpeg CLI pipes) were made.
    return _MATRIX_BY_SPACE.get(frame.colorspace, "bt601"), full


class _RgbConverter:
    """Decoded frame -> display-oriented ``(H, W, 3)`` uint8 RGB, one swscale context reused."""

    def __init__(self, matrix: str, full_range: bool, ops: tuple[int, bool, bool]) -> None:
        self.matrix, self.full_range, self.ops = matrix, full_range, ops
        self._sws = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> NDArray[np.uint8]:
        if self.matrix == "rgb":
            out = self._sws.reformat(frame, format="rgb24", threads=1)
        else:
            out = self._sws.reformat(
                frame,
                format="rgb24",
                src_colorspace=_SWS_MATRIX[self.matrix],
                src_color_range=ColorRange.JPEG if self.full_range else ColorRange.MPEG,
                dst_color_range=ColorRange.JPEG,
                threads=1,
            )
        return _orient(out.to_ndarray(format="rgb24"), self.ops)


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
        tb = v.time_base or Fraction(1, 1)
        scan = _scan_packets(c, v)
        rate = v.average_rate or v.guessed_rate
        sar = v.sample_aspect_ratio
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
            for frame in c.decode(video=0):
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


# ---------------------------------------------------------------------------------------------
# Reading


class _Damage(Exception):
    """Internal: the stream cannot be decoded past this point."""


class _Cursor:
    """One open container positioned on a frame index; decodes forward, seeks when cheaper."""

    def __init__(self, index: _Index) -> None:
        self.index = index
        self.info = index.info
        self.convert = _RgbConverter(self.info.yuv_matrix, self.info.full_range, index.ops)
        self.container: av.container.InputContainer | None = None
        self.frames: Iterator[av.VideoFrame] | None = None
        self.pending: av.VideoFrame | None = None
        self.stream: av.VideoStream | None = None
        self.next_index = 0

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
        self.container, self.frames, self.pending = None, None, None

    def _decoded(self, c: av.container.InputContainer, v: av.VideoStream) -> Iterator[av.VideoFrame]:
        for pkt in c.demux(v):
            reason = "an incomplete packet" if pkt.is_corrupt else ""
            if not reason:
                try:
                    frames = v.decode(pkt)  # the final empty packet flushes the decoder: keep it
                except av.error.FFmpegError as exc:
                    reason = f"decoding failed: {exc.strerror or exc}"
            if reason:
                try:  # frames already decoded but held back for reordering are still good
                    yield from v.decode(None)
                except av.error.FFmpegError:
                    pass
                raise _Damage(reason)
            yield from frames

    def _restart(self) -> None:
        self.close()
        self.container = av.open(str(self.info.path), mode="r")
        self.stream = self.container.streams[self.info.stream_index]
        self.stream.thread_type = "AUTO"
        self.frames = self._decoded(self.container, self.stream)
        self.next_index = 0

    def _seek(self, key: int) -> None:
        """Seek to the keyframe with pts ``key`` and position on it.

        Frames the decoder gives before the keyframe's pts are dropped: after a seek they may
        lack their references (leading frames of an open GOP).
        """
        assert self.container is not None and self.stream is not None
        self.container.seek(key, stream=self.stream, backward=True, any_frame=False)
        self.frames = self._decoded(self.container, self.stream)
        frame = next(self.frames, None)
        while frame is not None and frame.pts is not None and frame.pts < key:
            frame = next(self.frames, None)
        if frame is None or frame.pts != key:
            raise _Damage(f"seeking to pts {key} landed elsewhere")
        self.pending = frame
        self.next_index = bisect_left(self.index.pts, key)

    def read(self) -> av.VideoFrame:
        """The decoded frame at ``next_index``; advances by one."""
        assert self.frames is not None
        frame, self.pending = (self.pending or next(self.frames, None)), None
        if frame is None:
            raise _Damage("the stream ended early")
        table = self.index.pts
        if table and frame.pts != table[self.next_index]:
            raise _Damage(f"the decoder gave pts {frame.pts} where the index has "
                          f"{table[self.next_index]}")
        self.next_index += 1
        return frame

    def move_to(self, i: int) -> None:
        """Position so that :meth:`read` returns frame ``i``."""
        table, keys = self.index.pts, self.index.keys
        if self.frames is None:
            self._restart()
        # Decoding forward beats a seek unless a keyframe lies between here and frame i.
        if self.next_index <= i and (
            not table or bisect_right(keys, table[i]) == bisect_right(keys, table[self.next_index])
        ):
            self._skip_to(i)
            return
        before = keys[: bisect_right(keys, table[i])] if table else ()
        for key in reversed(before[-3:]):  # if a seek misses, try the keyframe before
            try:
                self._seek(key)
                self._skip_to(i)
                return
            except _Damage:
                continue
        self._restart()
        self._skip_to(i)

    def _skip_to(self, i: int) -> None:
        while self.next_index < i:
            self.read()

    def frame(self) -> Frame:
        i = self.next_index
        av_frame = self.read()
        return Frame(i, av_frame.pts, self.info.time_base, self.convert(av_frame))

    def has_more(self) -> bool:
        """Whether the decoder still yields a frame (after the last indexed one it must not)."""
        assert self.frames is not None
        self.pending = self.pending or next(self.frames, None)
        return self.pending is not None


class VideoReader:
    """Read a clip's frames exactly: sequentially, by range, or one at a time by index.

    The file is opened read-only and never written. Each call to :meth:`frames` (and iteration)
    decodes with its own demuxer, so iterating while calling :meth:`frame_at` is safe.

    Args:
        path: a video file or a folder of numbered PNG/JPEG frames.
        allow_truncated: when the stream turns out truncated or corrupt, stop iterating cleanly
            at the last good frame and record it in :attr:`truncated_at`, instead of raising.
        fps: frame rate of an image-sequence folder (ignored for containers).

    Attributes:
        path: the input path.
        info: the clip's :class:`VideoInfo`.
        truncated_at: index of the first frame that could not be read, once reading stopped
            there with ``allow_truncated``; None otherwise.
        frames_read: frames yielded by the latest :meth:`frames` iteration (or ``iter``).

    Raises:
        InputError: the input is missing, not a video, or has no video stream.
        TruncatedInputError: frame 0 cannot be decoded (at construction), or, while reading,
            the stream is truncated or corrupt and ``allow_truncated`` is False. Its
            ``stopped_at`` is the number of frames read correctly.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        allow_truncated: bool = False,
        fps: Fraction | float | int = DEFAULT_SEQUENCE_FPS,
    ) -> None:
        self._index = _index(path, fps)
        self.info = self._index.info
        self.path = self.info.path
        self.allow_truncated = allow_truncated
        self.truncated_at: int | None = None
        self.frames_read = 0
        self._random = _Cursor(self._index)

    @property
    def stems(self) -> tuple[str, ...]:
        """File stems of an image sequence, one per frame (empty for containers)."""
        return self.info.stems

    @property
    def frame_pts(self) -> tuple[int, ...]:
        """pts of every frame, by index (empty for streams that carry no timestamps)."""
        return self._index.pts

    def __len__(self) -> int:
        return self.info.num_frames

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def _damaged(self, at: int, reason: str) -> TruncatedInputError | None:
        if self.allow_truncated:
            self.truncated_at = at
            return None
        good = f"frames 0-{at - 1} are good; allow truncated input to keep them" if at else \
            "no frame is good"
        return TruncatedInputError(
            f"{self.path}: stream is truncated or corrupt at frame {at} ({reason}); {good}",
            stopped_at=at)

    def _check_range(self, start: int, stop: int) -> None:
        n = self.info.num_frames
        if not 0 <= start <= stop <= n:
            raise IndexError(f"{self.path}: frames {start}-{stop - 1} outside 0-{n - 1}")

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        """Yield frames ``start`` .. ``stop - 1`` in presentation order.

        Args:
            start: first frame index.
            stop: one past the last frame index (default: the end of the clip).

        Yields:
            :class:`Frame` records with exact index and pts, display-oriented RGB images.

        Raises:
            IndexError: the range is outside ``0 .. num_frames``.
            TruncatedInputError: see the class docstring.
        """
        n = self.info.num_frames
        stop = n if stop is None else stop
        self._check_range(start, stop)
        self.frames_read = 0
        if self.info.is_image_sequence:
            for frame in self._image_frames(start, stop):
                self.frames_read += 1
                yield frame
            return
        cursor = _Cursor(self._index)
        try:
            try:
                if start < stop:
                    cursor.move_to(start)
                for _ in range(start, stop):
                    frame = cursor.frame()
                    self.frames_read += 1
                    yield frame
                if stop == n and self.info.complete and n and cursor.has_more():
                    raise InputError(f"{self.path}: the decoder gives more frames than its "
                                     f"{n} packets; several frames per packet is not supported")
            except _Damage as damage:
                err = self._damaged(cursor.next_index, str(damage))
                if err is not None:
                    raise err from None
                return
            if stop == n and not self.info.complete:
                err = self._damaged(n, self._index.damage)
                if err is not None:
                    raise err
        finally:
            cursor.close()

    def frame_at(self, index: int) -> Frame:
        """Decode the frame at ``index`` (seek to the keyframe before it, decode forward).

        Consecutive or nearby calls reuse the decoder instead of seeking again.

        Raises:
            IndexError: ``index`` is outside the clip.
            TruncatedInputError: the frame cannot be decoded (whatever ``allow_truncated``).
        """
        self._check_range(index, index + 1)
        if self.info.is_image_sequence:
            return next(self._image_frames(index, index + 1, strict=True))
        try:
            self._random.move_to(index)
            return self._random.frame()
        except _Damage as damage:
            self._random.close()
            raise TruncatedInputError(f"{self.path}: frame {index} cannot be decoded ({damage})",
                                      stopped_at=index) from None

    def _image_frames(self, start: int, stop: int, strict: bool = False) -> Iterator[Frame]:
        info = self.info
        convert: _RgbConverter | None = None
        for i in range(start, stop):
            file = self._index.files[i]
            try:
                av_frame = _decode_image(file, i)
            except TruncatedInputError:
                if strict or not self.allow_truncated:
                    raise
                self.truncated_at = i
                return
            if (av_frame.width, av_frame.height) != (info.width, info.height):
                raise InputError(f"{file}: frame {i} is {av_frame.width}x{av_frame.height}, the "
                                 f"sequence is {info.width}x{info.height}")
            matrix, full = _resolve_colour(av_frame)
            if convert is None or (convert.matrix, convert.full_range) != (matrix, full):
                convert = _RgbConverter(matrix, full, (0, False, False))
            yield Frame(i, i, info.time_base, convert(av_frame))

    def close(self) -> None:
        """Close the random-access decoder (iterators close their own when finished)."""
        self._random.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
