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
      (10-bit, 4:2:2, 4:4:4) and converted to 8-bit RGB in one swscale step; a source of more
      than 8 bits a sample also to 16-bit RGB when the render asks (``frames(deep=True)``).

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
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from fractions import Fraction
from types import TracebackType

import av

from plugin.colour import RgbConverter as _RgbConverter
from plugin.colour import resolve_colour as _resolve_colour
from plugin.probe import (
    DEFAULT_SEQUENCE_FPS,
    IMAGE_SUFFIXES,
    StreamInfo,
    VideoInfo,
    _decode_image,
    _Index,
    _index,
    probe,
)
from tracking.errors import InputError, TruncatedInputError
from tracking.frame import Frame

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
        #: Also 16-bit RGB of each frame (``Frame.deep``), set by :meth:`VideoReader.frames`.
        self.deep: _RgbConverter | None = None
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
        info = self.info
        coded = (info.height, info.width) if self.index.ops[0] % 2 else (info.width, info.height)
        if (av_frame.width, av_frame.height) != coded:  # checked before converting: memory stays bounded
            raise InputError(f"{info.path}: frame {i} is {av_frame.width}x{av_frame.height} but the "
                             f"stream starts at {coded[0]}x{coded[1]}; deltaface reads one frame size "
                             "per clip (split the clip where the size changes)")
        deep = self.deep(av_frame) if self.deep is not None else None
        return Frame(i, av_frame.pts, info.time_base, self.convert(av_frame), deep)

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

    def frames(self, start: int = 0, stop: int | None = None, *, deep: bool = False) -> Iterator[Frame]:
        """Yield frames ``start`` .. ``stop - 1`` in presentation order.

        Args:
            start: first frame index.
            stop: one past the last frame index (default: the end of the clip).
            deep: also give each frame as 16-bit RGB (``Frame.deep``) when the source has more
                than 8 bits a sample (a 10-bit stream, a folder of 16-bit PNGs).

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
            for frame in self._image_frames(start, stop, deep=deep):
                self.frames_read += 1
                yield frame
            return
        cursor = _Cursor(self._index)
        if deep and self.info.bit_depth > 8:
            cursor.deep = _RgbConverter(self.info.yuv_matrix, self.info.full_range, self._index.ops, "rgb48le")
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

    def _image_frames(self, start: int, stop: int, strict: bool = False, deep: bool = False) -> Iterator[Frame]:
        info = self.info
        converters: tuple[_RgbConverter, _RgbConverter] | None = None  # to 8-bit and to 16-bit RGB
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
            if converters is None or (converters[0].matrix, converters[0].full_range) != (matrix, full):
                converters = (_RgbConverter(matrix, full, (0, False, False)),
                              _RgbConverter(matrix, full, (0, False, False), "rgb48le"))
            eight, sixteen = converters
            wide = deep and av_frame.format.components[0].bits > 8
            yield Frame(i, i, info.time_base, eight(av_frame), sixteen(av_frame) if wide else None)

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


__all__ = ["DEFAULT_SEQUENCE_FPS", "IMAGE_SUFFIXES", "StreamInfo", "VideoInfo", "VideoReader", "probe"]
