"""Encode frames with the source's exact timing, copy its other streams, tag the output.

:class:`VideoWriter` writes display-oriented RGB :class:`Frame` records to a new file (or a PNG
folder) that keeps the source's size, pts and time base (VFR stays VFR), colour tags, and every
audio, subtitle and data stream, copied packet for packet and interleaved with the video as it is
written. The output carries no display rotation: the frames are already upright. It is written
under a temporary name beside the final one and renamed only when complete
(:mod:`plugin.output`), and it carries the provenance tag (:mod:`plugin.provenance`).

Codecs and containers:
    * ``h264``: libx264, yuv420p, ``crf`` and ``preset``, closed GOPs of ``keyframe_seconds``;
      ``.mp4``, ``.mov`` or ``.mkv``.
    * ``prores``: prores_ks 422 HQ, yuv422p10le; ``.mov`` or ``.mkv``.
    * a source of odd width or height (4:2:0 and 4:2:2 need even sizes) is written with
      full-resolution chroma instead when no ``pix_fmt`` was asked for (:data:`ODD_SIZE_PIX_FMT`,
      with a warning): the output keeps the source's size.
    * ``ffv1``: lossless, ``bgr0`` (8-bit RGB; FFV1 has no 8-bit planar RGB): frames decode
      bit-identical to the RGB written; ``.mkv`` or ``.nut``. For a source of more than 8 bits a
      sample, ``gbrp16le`` (:data:`plugin.deep.DEEP_PIX_FMT`).
    * a source of more than 8 bits a sample written to more than 8 (ProRes, FFV1) is encoded
      from its 16-bit images (``Frame.deep``, :mod:`plugin.deep`); to 8 bits, with a warning.
    * ``png``: one RGB PNG per frame in a folder (``%06d.png`` by frame index, or the source's
      file stems when it is an image sequence) with ``provenance.json``; no audio.

Timestamps are exact in MP4, MOV and NUT. Matroska stores them in milliseconds, and every
container but MP4/MOV shifts the whole timeline when a copied stream starts before zero (AAC
encoder priming): :attr:`VideoWriter.max_pts_error_s` measures what the container did.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
from av.video.reformatter import Colorspace, ColorRange, VideoReformatter

from plugin.deep import DEEP_PIX_FMT, bits
from plugin.output import AtomicOutput
from plugin.provenance import (
    PROVENANCE_KEY,
    apply_provenance,
    build_provenance,
    write_provenance_file,
)
from plugin.streamcopy import PacketCopier
from plugin.video import VideoInfo, VideoReader
from tracking.errors import ConfigError, OutputError
from tracking.frame import Frame

_log = logging.getLogger(__name__)


def _has_alpha(pix_fmt: str | None) -> bool:
    """Whether frames of this FFmpeg pixel format carry an alpha channel."""
    try:
        return pix_fmt is not None and any(c.is_alpha for c in av.video.format.VideoFormat(pix_fmt).components)
    except (ValueError, TypeError):
        return False

CODECS = ("h264", "prores", "ffv1", "png")
#: Container suffixes each codec may be written to (png writes a folder).
SUFFIXES = {"h264": (".mp4", ".mov", ".mkv"), "prores": (".mov", ".mkv"),
            "ffv1": (".mkv", ".mp4", ".nut"), "png": ("",)}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
_ENCODER = {"h264": "libx264", "prores": "prores_ks", "ffv1": "ffv1", "png": "png"}
_DEFAULT_PIX_FMT = {"h264": "yuv420p", "prores": "yuv422p10le", "ffv1": "bgr0", "png": "rgb24"}
#: Pixel format written instead of the default for a source of odd width or height.
ODD_SIZE_PIX_FMT = {"h264": "yuv444p", "prores": "yuv444p10le"}
_FORMAT = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".nut": "nut"}
_SWS = {"bt709": Colorspace.ITU709, "bt601": Colorspace.ITU601, "fcc": Colorspace.FCC,
        "smpte240m": Colorspace.SMPTE240M, "bt2020": Colorspace.BT2020}
_SPACE_CODE = {"bt709": 1, "fcc": 4, "bt601": 6, "smpte240m": 7, "bt2020": 9}
_SKIP_METADATA = {"major_brand", "minor_version", "compatible_brands", "encoder", "comment"}
_VIDEO_METADATA = {"timecode", "language", "title"}


def keyframe_interval(rate: Fraction | float | None, seconds: float) -> int:
    """Frames per closed H.264 GOP: ``round(rate * seconds)``, at least 1 (25 fps if unknown)."""
    fps = float(rate) if rate and rate > 0 else 25.0
    return max(1, round(fps * seconds))


def x264_gop_params(rate: Fraction | float | None, seconds: float) -> str:
    """``x264-params`` for closed GOPs of exactly :func:`keyframe_interval` frames.

    Every keyframe is an IDR starting a closed GOP (no open GOPs, no scene-cut keyframes), so that
    a re-render of a few frames (:mod:`plugin.smartrender`) re-encodes only the GOPs holding them
    and copies every other packet byte for byte.
    """
    n = keyframe_interval(rate, seconds)
    return f"keyint={n}:min-keyint={n}:scenecut=0:open-gop=0"


@dataclass(frozen=True)
class OutputConfig:
    """How to encode the output.

    Attributes:
        codec: ``"h264"``, ``"prores"``, ``"ffv1"`` or ``"png"``.
        crf: libx264 constant rate factor, 0 (lossless luma/chroma) to 51.
        preset: libx264 preset (``"ultrafast"`` ... ``"placebo"``).
        pix_fmt: encoder pixel format; None chooses (see the module docstring). Any other
            format is converted to with swscale; ffv1 is lossless only with the default.
        overwrite: replace an existing output.
        keyframe_seconds: ``h264``: seconds between keyframes, each starting a closed GOP of a
            fixed frame count (see :func:`x264_gop_params`). 2 s cost 9-26 % of file size on the
            fixture clips against x264's default (250 frames, scene cuts), 1 s 14-46 % (README);
            a re-render of a few frames re-encodes about one such GOP.
    """

    codec: str = "h264"
    crf: int = 16
    preset: str = "medium"
    pix_fmt: str | None = None
    overwrite: bool = False
    keyframe_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ConfigError(f"codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ConfigError(f"crf must be an integer 0-51, got {self.crf!r}")
        if isinstance(self.keyframe_seconds, bool) or not isinstance(self.keyframe_seconds, (int, float)) \
                or not 0.04 <= self.keyframe_seconds <= 60:
            raise ConfigError(f"keyframe_seconds must be in [0.04, 60], got {self.keyframe_seconds!r}")
        if self.preset not in X264_PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(X264_PRESETS)}, got {self.preset!r}")
        if self.pix_fmt is not None:
            names = {f.name for f in av.codec.Codec(self.encoder, "w").video_formats or ()}
            if self.pix_fmt not in names:
                raise ConfigError(f"pix_fmt {self.pix_fmt!r} cannot be encoded by {self.encoder}")

    @property
    def encoder(self) -> str:
        """FFmpeg encoder name."""
        return _ENCODER[self.codec]

    @property
    def output_pix_fmt(self) -> str:
        return self.pix_fmt or _DEFAULT_PIX_FMT[self.codec]

    def check_path(self, path: str | os.PathLike[str]) -> None:
        """Refuse an output name this codec is not written to (a container it cannot go in, or a
        file name for a PNG folder), before any work is done.

        Raises:
            ConfigError: naming the output and what the codec is written to.
        """
        final = Path(path)
        suffix = final.suffix.lower()
        if self.codec == "png" and suffix in _FORMAT or self.codec != "png" and suffix not in SUFFIXES[self.codec]:
            allowed = "a folder" if self.codec == "png" else " or ".join(SUFFIXES[self.codec])
            raise ConfigError(f"{final}: codec {self.codec} is written to {allowed}")


class PngFrameEncoder:
    """Encodes frames to the PNG files of an image-sequence output, and names them.

    The one place that decides a PNG output's bytes and file names, shared by
    :class:`VideoWriter` and the partial re-render and resume of a PNG folder
    (:mod:`plugin.sequence`), so that a frame written later is byte-identical to the same frame
    written in one pass.

    Args:
        info: the source clip (size, time base, file stems of an image-sequence source).
        pix_fmt: PNG pixel format (``"rgb24"`` unless asked otherwise).
    """

    def __init__(self, info: VideoInfo, pix_fmt: str = "rgb24") -> None:
        self.info = info
        self.pix_fmt = pix_fmt
        self._ctx = av.CodecContext.create("png", "w")
        self._ctx.width, self._ctx.height = info.width, info.height
        self._ctx.pix_fmt = pix_fmt
        self._ctx.time_base = info.time_base
        self._ctx.open()
        self._sws = VideoReformatter()

    def file_name(self, index: int) -> str:
        """``%06d.png`` by frame index, or the source's file stem when it is an image sequence."""
        stems = self.info.stems
        return (stems[index] if index < len(stems) else f"{index:06d}") + ".png"

    def encode(self, frame: Frame) -> bytes:
        """The PNG file's bytes for ``frame`` (``(H, W, 3)`` uint8 RGB)."""
        rgb = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
        if self.pix_fmt != "rgb24":
            rgb = self._sws.reformat(rgb, format=self.pix_fmt, threads=1)
        return b"".join(bytes(p) for p in self._ctx.encode(rgb))


class VideoWriter:
    """Write frames like the source: same size, pts, time base, colour tags and other streams.

    Use as a context manager; leaving the block normally finishes the file and renames it into
    place, leaving it by an exception removes everything written.

    Args:
        path: the output file (``.mp4``/``.mov``/``.mkv``/``.nut`` as the codec allows) or, for
            ``png``, the output folder.
        source: the clip the frames come from (its :class:`VideoInfo` or its reader).
        config: codec and quality settings.
        provenance: the tag from :func:`plugin.provenance.build_provenance`; default: processed,
            no faces edited.
        copy_streams: copy the source's audio and other streams (False for a video-only piece,
            such as the GOPs a partial re-render encodes and splices into an existing output).

    Attributes:
        path: the final output path.
        frames_written: frames written so far.
        copied_packets: packets copied from the source's other streams (after close).
        skipped_streams: source streams not copied, with the reason.
        max_pts_error_s: after close, the largest difference in seconds between a written
            frame's time and its time in the output as the demuxer reads it (0.0 when exact;
            None for PNG folders).
        pts_moved: frames written after their own pts because the source gave the frame
            before them the same one (each goes one tick after the frame before it).

    Raises:
        ConfigError: the codec cannot be written to this kind of file.
        OutputError: see :func:`plugin.output.check_output_path`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        source: VideoInfo | VideoReader,
        config: OutputConfig | None = None,
        provenance: Mapping[str, Any] | None = None,
        *,
        copy_streams: bool = True,
    ) -> None:
        self.info = source.info if isinstance(source, VideoReader) else source
        self.config = config or OutputConfig()
        self.tag = dict(provenance) if provenance is not None else build_provenance(source=self.info.path)
        self._copy_streams = copy_streams
        final = Path(path)
        codec = self.config.codec
        self.config.check_path(final)
        pix_fmt = self.config.output_pix_fmt
        odd_w, odd_h = self.info.width % 2, self.info.height % 2
        if (odd_w and any(k in pix_fmt for k in ("420", "422", "411"))) or (odd_h and "420" in pix_fmt):
            if self.config.pix_fmt is not None or codec not in ODD_SIZE_PIX_FMT:
                raise ConfigError(f"{final}: {pix_fmt} needs an even frame size, but {self.info.path} is "
                                  f"{self.info.width}x{self.info.height}; choose ffv1 or png, or a 4:4:4 pix_fmt")
            # Chroma subsampling needs even sizes; full-resolution chroma keeps the frame's own size.
            self.config = dataclasses.replace(self.config, pix_fmt=ODD_SIZE_PIX_FMT[codec])
            _log.warning("%s is %dx%d (odd): %s is written as %s (4:4:4; some players only play 4:2:0)",
                         self.info.path, self.info.width, self.info.height, final, self.config.pix_fmt)
        deep_source = self.info.bit_depth > 8
        if deep_source and self.config.pix_fmt is None and codec in DEEP_PIX_FMT:
            self.config = dataclasses.replace(self.config, pix_fmt=DEEP_PIX_FMT[codec])
        out_bits = bits(self.config.output_pix_fmt)
        #: Whether frames are encoded from their 16-bit images (``Frame.deep``, ``plugin.deep``):
        #: the source and this output both have more than 8 bits a sample (PNG folders stay 8-bit).
        self.deep = deep_source and out_bits > 8 and codec != "png"
        kept = min(self.info.bit_depth, out_bits) if self.deep else 8
        if self.info.bit_depth > kept:
            hint = ": prores or ffv1 keep more" if deep_source and not self.deep else ""
            _log.warning("%s has %d bits a sample (%s); %s keeps %d (%s %s)%s", self.info.path,
                         self.info.bit_depth, self.info.pix_fmt, final, kept, codec, self.config.output_pix_fmt, hint)
        if _has_alpha(self.info.pix_fmt):
            _log.warning("%s: its alpha channel (%s) is not carried over: deltaface renders RGB, so %s "
                         "is opaque", self.info.path, self.info.pix_fmt, final)
        self.frames_written = 0
        self.copied_packets = 0
        self.skipped_streams: list[str] = []
        self.max_pts_error_s: float | None = None
        self._times: list[Fraction] = []
        self._last_pts: int | None = None  # as written
        self._last_source_pts: int | None = None
        self.pts_moved = 0
        self._names: set[str] = set()
        self._sws = VideoReformatter()
        self._copier: PacketCopier | None = None
        self._container: av.container.OutputContainer | None = None
        self._closed = False
        self._atomic = AtomicOutput(final, overwrite=self.config.overwrite, inputs=[self.info.path],
                                    is_folder=codec == "png")
        self.path = self._atomic.final
        try:
            if codec == "png":
                self._png = PngFrameEncoder(self.info, self.config.output_pix_fmt)
                self.skipped_streams = [f"stream {s.index} ({s.kind}): a PNG folder holds only "
                                        "frames" for s in self.info.streams]
            else:
                self._open_container(final.suffix.lower())
        except BaseException:
            self._abort()
            raise

    # -- set-up ---------------------------------------------------------------------------------

    def _colour(self) -> tuple[str, bool, dict[str, int]]:
        """(matrix, full range, tags) for the output.

        YUV output uses the source's matrix and range (resolved as the reader resolved them, so
        untagged sources get explicit tags) and copies its primaries and transfer tags; ProRes
        is always limited range. RGB sources (PNG, FFV1) get limited-range BT.709 at 720 lines
        and more, BT.601 below. FFV1 stays RGB.
        """
        info, codec = self.info, self.config.codec
        if codec == "ffv1" and self.config.pix_fmt is None:
            return "rgb", True, {"colorspace": 0, "color_range": 2,
                                 "color_primaries": info.color_primaries, "color_trc": info.color_trc}
        if info.yuv_matrix in _SWS:
            matrix, full = info.yuv_matrix, info.full_range and codec != "prores"
        else:  # RGB source: the matrix players assume for untagged video of this size
            matrix, full = ("bt709" if info.height >= 720 else "bt601"), False
        space = info.color_space if matrix == "bt601" and info.color_space in (5, 6) \
            else _SPACE_CODE[matrix]
        return matrix, full, {"colorspace": space, "color_range": 2 if full else 1,
                              "color_primaries": info.color_primaries, "color_trc": info.color_trc}

    def _field_order(self, v: Any) -> bool:
        """Give the output stream the source's field order; True when it is interlaced.

        Frames are read woven (both fields in one frame) and written so; an interlaced source
        stays interlaced (H.264 codes it as fields, every codec signals the order), unless it is
        displayed rotated or mirrored, where its fields are no longer the frame's rows."""
        info = self.info
        if not info.interlaced:
            return False
        if info.rotation or info.mirrored:
            _log.warning("%s is interlaced and displayed rotated or mirrored: %s is written progressive",
                         info.path, self.path)
            return False
        v.codec_context.field_order = info.field_order
        return True

    def _open_container(self, suffix: str) -> None:
        info, cfg = self.info, self.config
        options = {}
        if suffix in (".mp4", ".mov"):
            options["movflags"] = "use_metadata_tags"
            if info.time_base.numerator == 1:
                options["video_track_timescale"] = str(info.time_base.denominator)
        try:
            self._container = av.open(str(self._atomic.temp), mode="w", format=_FORMAT[suffix],
                                      options=options)
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(f"{self.path}: cannot create the output ({exc})") from exc
        c = self._container
        v = c.add_stream(cfg.encoder, rate=info.average_rate)
        v.width, v.height = info.width, info.height
        v.pix_fmt = cfg.output_pix_fmt
        v.time_base = info.time_base
        v.codec_context.time_base = info.time_base
        if info.sample_aspect_ratio != 1:
            v.codec_context.sample_aspect_ratio = info.sample_aspect_ratio
        self._matrix, self._full, tags = self._colour()
        for key, value in tags.items():
            setattr(v.codec_context, key, value)
        self._tags = tags
        interlaced = self._field_order(v)
        if cfg.codec == "h264":
            params = x264_gop_params(info.average_rate, cfg.keyframe_seconds)
            if interlaced:  # coded as fields, in the source's order, as the source was
                params += ":interlaced=1:" + ("tff=1" if info.top_field_first else "bff=1")
            v.options = {"crf": str(cfg.crf), "preset": cfg.preset, "x264-params": params}
        elif cfg.codec == "prores":  # 422 HQ, or 4444 when a 4:4:4 format is asked for
            v.options = {"profile": "4" if "444" in v.pix_fmt else "3", "vendor": "apl0"}
        elif cfg.codec == "ffv1":
            v.options = {"level": "3", "g": "1", "slicecrc": "1"}
        self._video = v
        if not info.is_image_sequence and self._copy_streams:
            self._copier = PacketCopier(info.path, info.stream_index, c)
            self.skipped_streams = list(self._copier.skipped)
            with av.open(str(info.path), mode="r") as src:
                for key, value in src.metadata.items():
                    if key.lower() not in _SKIP_METADATA and key.lower() != PROVENANCE_KEY:
                        c.metadata[key] = value
                for key, value in src.streams[info.stream_index].metadata.items():
                    if key.lower() in _VIDEO_METADATA:  # MOV re-creates a timecode track from it
                        v.metadata[key.lower()] = value
        apply_provenance(c.metadata, self.tag)

    # -- writing --------------------------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        """Encode one frame, keeping its pts in the source's time base.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB, display orientation, the source's size; its pts must
                be later than the previous frame's, and its time base the source's. When
                :attr:`deep` is set and the frame has a 16-bit image (``Frame.deep``), that is
                what is encoded.

        Raises:
            ValueError: the frame does not fit the source or comes out of order, or the writer
                is closed.
        """
        info = self.info
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        if frame.image.shape != (info.height, info.width, 3):
            raise ValueError(f"frame {frame.index}: image is {frame.width}x{frame.height}, the "
                             f"output is {info.width}x{info.height}")
        if frame.time_base != info.time_base:
            raise ValueError(f"frame {frame.index}: time base {frame.time_base} differs from the "
                             f"source's {info.time_base}")
        if frame.pts is None or (self._last_source_pts is not None and frame.pts < self._last_source_pts):
            raise ValueError(f"frame {frame.index}: pts {frame.pts} is before the previous "
                             f"frame's {self._last_source_pts}")
        pts = frame.pts
        if self._last_pts is not None and pts <= self._last_pts:
            # The source repeats a pts (a muxing fault: a screen recorder, a bad concatenation).
            # No container takes two frames at one time: this one goes a tick after the last.
            pts = self._last_pts + 1
            self.pts_moved += 1
            if self.pts_moved == 1:
                _log.warning("%s: frame %d has the pts of the frame before it (%d); %s has it one "
                             "tick (%s s) later, and so any later frame that repeats one", info.path,
                             frame.index, frame.pts, self.path, info.time_base)
        self._last_source_pts, self._last_pts = frame.pts, pts
        try:
            if self.config.codec == "png":
                self._write_png(frame)
            else:
                self._encode(frame, pts)
        except OSError as exc:  # disk full, file too large, I/O error: say so, keep nothing
            self._abort()
            raise self._write_error(exc, f"frame {frame.index}") from exc
        self.frames_written += 1

    def _write_error(self, exc: OSError, where: str) -> OutputError:
        reason = exc.strerror or str(exc)
        return OutputError(f"{self.path}: could not write {where} ({reason}); nothing was left under this name")

    def _encode(self, frame: Frame, pts: int) -> None:
        assert self._container is not None
        if self.deep and frame.deep is not None:
            rgb = av.VideoFrame.from_ndarray(frame.deep, format="rgb48le")
        else:
            rgb = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
        if self._matrix == "rgb":
            out = self._sws.reformat(rgb, format=self._video.pix_fmt, threads=1)
        else:
            out = self._sws.reformat(
                rgb, format=self._video.pix_fmt, dst_colorspace=_SWS[self._matrix],
                dst_color_range=ColorRange.JPEG if self._full else ColorRange.MPEG, threads=1)
        for key, value in self._tags.items():
            setattr(out, key, value)
        out.pts = pts
        out.time_base = frame.time_base
        time = pts * frame.time_base
        self._times.append(time)
        if self._copier is not None:
            self._copier.mux_until(self._container, time)
        self._container.mux(self._video.encode(out))

    def _write_png(self, frame: Frame) -> None:
        name = self._png.file_name(frame.index)
        if name in self._names:
            raise ValueError(f"frame {frame.index}: {name} was already written")
        self._names.add(name)
        (self._atomic.temp / name).write_bytes(self._png.encode(frame))

    # -- finishing ------------------------------------------------------------------------------

    def close(self) -> Path:
        """Flush the encoder, copy the remaining packets, tag, and rename into place.

        Returns:
            The final output path.

        Raises:
            OutputError: the output could not be finished; nothing is left under its name.
        """
        if self._closed:
            return self.path
        self._closed = True
        try:
            if self.config.codec == "png":
                write_provenance_file(self._atomic.temp, self.tag)
            else:
                assert self._container is not None
                self._container.mux(self._video.encode(None))
                if self._copier is not None:
                    self._copier.mux_until(self._container, None)
                    self.copied_packets = self._copier.count
                    self._copier.close()
                self._container.close()
                self._container = None
                self.max_pts_error_s = self._measure_pts()
            return self._atomic.commit()
        except OSError as exc:
            self._abort()
            raise self._write_error(exc, "the end of the file") from exc
        except BaseException:
            self._abort()
            raise

    def _measure_pts(self) -> float:
        with av.open(str(self._atomic.temp), mode="r") as c:
            v = c.streams.video[0]
            got = sorted(p.pts * v.time_base for p in c.demux(v) if p.pts is not None)
        if len(got) != len(self._times):
            raise OutputError(f"{self.path}: {len(got)} video packets written for "
                              f"{len(self._times)} frames")
        error = max((abs(a - b) for a, b in zip(got, self._times)), default=Fraction(0))
        if error:
            _log.warning("%s: the container moved frame times by up to %.6f s", self.path,
                         float(error))
        return float(error)

    def _abort(self) -> None:
        self._closed = True
        if self._copier is not None:
            self._copier.close()
        if self._container is not None:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError):
                pass  # the file is being thrown away
            self._container = None
        self._atomic.abort()

    def abort(self) -> None:
        """Stop writing and remove everything written; the final name is left untouched."""
        self._abort()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()
