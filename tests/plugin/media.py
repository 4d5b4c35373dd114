"""Small test videos made on the spot with PyAV and numpy (independent of deltaface's writer).

Every function writes into a folder the caller owns (pytest's ``tmp_path``) and returns the path.
Clips are tiny (64x48 by default, 10-40 frames) so that a test costs milliseconds. The moving
pattern has a red block in the top-left corner and a blue block in the top-right corner, so a
wrong rotation or mirror is visible in the pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace
from numpy.typing import NDArray

WIDTH, HEIGHT = 64, 48
#: Irregular frame steps (in ticks of 1/15360 s) of the variable-frame-rate clip, cycled.
VFR_STEPS = (512, 1024, 512, 512, 1536, 512, 1024)


def pattern_image(index: int, width: int = WIDTH, height: int = HEIGHT) -> NDArray[np.uint8]:
    """A deterministic moving test image.

    Returns:
        ``(height, width, 3)`` uint8 RGB: smooth waves moving with ``index``, a red block at the
        top-left and a blue block at the top-right corner (each 1/4 of the width wide and 1/4 of
        the height tall).
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([
        128 + 90 * np.sin((xx + 2 * index) / 7.0),
        128 + 90 * np.sin((yy - 1.5 * index) / 6.0),
        128 + 90 * np.cos((xx + yy + 3 * index) / 11.0),
    ], axis=-1).round().astype(np.uint8)
    bw, bh = max(width // 4, 1), max(height // 4, 1)
    img[:bh, :bw] = (230, 20, 20)
    img[:bh, width - bw:] = (20, 20, 230)
    return img


def write_clip(
    path: Path,
    *,
    num_frames: int = 20,
    width: int = WIDTH,
    height: int = HEIGHT,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: Sequence[int] | None = None,
    time_base: Fraction = Fraction(1, 25),
    rate: Fraction | int = 25,
    codec_options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    rotation: int | None = None,
    audio_seconds: float = 0.0,
    images: Sequence[NDArray[np.uint8]] | None = None,
    bt709_tags: bool = False,
) -> Path:
    """Encode ``pattern_image`` frames (or ``images``) with explicit pts.

    Args:
        path: output file; the extension picks the container.
        num_frames: frames to write (ignored when ``images`` is given).
        pts: pts of each frame in ``time_base`` (default 0, 1, 2, ...).
        rotation: counter-clockwise display rotation to store in the container (MP4/MOV).
        audio_seconds: add a mono 16 kHz AAC tone of this length (0: no audio).
        images: ``(height, width, 3)`` uint8 RGB frames to encode instead of the pattern.
        bt709_tags: convert with BT.709 limited range and tag the stream so (space, range,
            primaries, transfer all BT.709); default: FFmpeg's BT.601 conversion, untagged.

    Returns:
        ``path``.
    """
    if images is None:
        images = [pattern_image(i, width, height) for i in range(num_frames)]
    pts = list(range(len(images))) if pts is None else list(pts)
    opts = {"preset": "ultrafast", "crf": "12"} if codec == "libx264" else {}
    opts.update(codec_options or {})
    with av.open(str(path), mode="w", options=container_options or {}) as c:
        v = c.add_stream(codec, rate=rate)
        v.width, v.height, v.pix_fmt = images[0].shape[1], images[0].shape[0], pix_fmt
        v.time_base = time_base
        v.codec_context.time_base = time_base
        v.options = opts
        if rotation is not None:
            v.set_display_rotation(rotation)
        if bt709_tags:
            cc = v.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1
        a = None
        if audio_seconds > 0:
            a = c.add_stream("aac", rate=16000)
            a.layout = "mono"
        for img, p in zip(images, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if bt709_tags:
                frame = frame.reformat(format=pix_fmt, dst_colorspace=Colorspace.ITU709,
                                       dst_color_range=ColorRange.MPEG)
            else:
                frame = frame.reformat(format=pix_fmt)
            frame.pts, frame.time_base = p, time_base
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        if a is not None:
            n = int(audio_seconds * 16000)
            tone = (0.2 * np.sin(np.arange(n) * 2 * np.pi * 440 / 16000)).astype(np.float32)
            for start in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts, af.time_base = 16000, start, Fraction(1, 16000)
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def cfr_clip(folder: Path, num_frames: int = 20) -> Path:
    """Constant 25 fps H.264 in MP4, pts 0, 1, 2, ... in 1/25 s (the muxer may rescale)."""
    return write_clip(folder / "cfr.mp4", num_frames=num_frames)


def vfr_pts(num_frames: int, start: int = 0) -> list[int]:
    """Irregular pts in 1/15360 s ticks: cumulative :data:`VFR_STEPS` from ``start``."""
    steps = [VFR_STEPS[i % len(VFR_STEPS)] for i in range(num_frames - 1)]
    return [start, *(start + int(s) for s in np.cumsum(steps))]


def vfr_clip(folder: Path, num_frames: int = 20, suffix: str = ".mp4") -> Path:
    """Variable frame rate H.264 (irregular pts, 1/15360 time base, start pts 507)."""
    return write_clip(folder / f"vfr{suffix}", num_frames=num_frames,
                      pts=vfr_pts(num_frames, 507), time_base=Fraction(1, 15360))


def offset_clip(folder: Path, num_frames: int = 12, start: int = 1000) -> Path:
    """H.264 whose first frame has pts ``start`` (1/1000 s ticks, 40 ms apart)."""
    return write_clip(folder / "offset.mp4", num_frames=num_frames, time_base=Fraction(1, 1000),
                      pts=[start + 40 * i for i in range(num_frames)])


def audio_clip(folder: Path, num_frames: int = 25, suffix: str = ".mp4") -> Path:
    """25 fps H.264 with a 1 s mono AAC tone."""
    return write_clip(folder / f"audio{suffix}", num_frames=num_frames, audio_seconds=1.0)


def rotated_clip(folder: Path, rotation: int, num_frames: int = 6) -> Path:
    """H.264 in MP4 with a display matrix rotating it ``rotation`` degrees counter-clockwise."""
    return write_clip(folder / f"rot{rotation}.mp4", num_frames=num_frames, rotation=rotation)


def long_gop_clip(folder: Path, num_frames: int = 40) -> Path:
    """H.264 with B-frames and one keyframe every 25 frames (random access must decode forward)."""
    return write_clip(folder / "longgop.mp4", num_frames=num_frames,
                      codec_options={"preset": "medium", "g": "25", "bf": "3", "crf": "20"})


def ten_bit_clip(folder: Path, num_frames: int = 8) -> Path:
    """10-bit 4:2:0 H.264 (High 10)."""
    return write_clip(folder / "tenbit.mp4", num_frames=num_frames, pix_fmt="yuv420p10le")


def interlaced_clip(folder: Path, num_frames: int = 8, top_first: bool = True, rotation: int | None = None) -> Path:
    """H.264 coded as fields (x264 ``interlaced``), top or bottom field first."""
    order = "tff=1" if top_first else "bff=1"
    return write_clip(folder / f"interlaced_{order[0]}.mp4", num_frames=num_frames, rotation=rotation,
                      codec_options={"x264-params": f"interlaced=1:{order}"})


def yuv444_clip(folder: Path, num_frames: int = 8) -> Path:
    """8-bit 4:4:4 H.264 (High 4:4:4)."""
    return write_clip(folder / "yuv444.mp4", num_frames=num_frames, pix_fmt="yuv444p")


def yuv_frame(planes: Sequence[NDArray[np.integer]], pix_fmt: str) -> av.VideoFrame:
    """A frame holding exactly the given Y, U, V sample planes (uint8, or uint16 for >8 bits)."""
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, pix_fmt)
    for plane, data in zip(frame.planes, planes, strict=True):
        row_bytes = data.shape[1] * data.itemsize
        padded = np.zeros((data.shape[0], plane.line_size), np.uint8)
        padded[:, :row_bytes] = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("<"))) \
            .view(np.uint8).reshape(data.shape[0], row_bytes)
        plane.update(padded.tobytes())
    return frame


def write_yuv_clip(
    path: Path,
    frames: Sequence[Sequence[NDArray[np.integer]]],
    pix_fmt: str,
    colorspace: int,
    color_range: int,
) -> Path:
    """Store exact YUV samples losslessly (FFV1 in MKV) with colour tags.

    Args:
        frames: per frame, the Y, U, V planes of ``pix_fmt`` (uint8, or uint16 for >8 bits).
        colorspace: FFmpeg ``AVColorSpace`` code to tag (1 bt709, 6 smpte170m/bt601).
        color_range: FFmpeg ``AVColorRange`` code to tag (1 tv/limited, 2 pc/full).
    """
    h, w = frames[0][0].shape
    with av.open(str(path), mode="w") as c:
        v = c.add_stream("ffv1", rate=25)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        v.codec_context.colorspace, v.codec_context.color_range = colorspace, color_range
        for i, planes in enumerate(frames):
            frame = yuv_frame(planes, pix_fmt)
            frame.colorspace, frame.color_range = colorspace, color_range
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    return path


def subtitle_clip(folder: Path, num_frames: int = 10) -> Path:
    """25 fps H.264 in Matroska with a SubRip subtitle stream of two cues (at frames 2 and 6)."""
    path = folder / "subs.mkv"
    with av.open(str(path), mode="w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        v.options = {"preset": "ultrafast"}
        s = c.add_mux_stream("subrip")
        s.time_base = Fraction(1, 1000)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern_image(i), format="rgb24")
            frame.pts = i
            c.mux(v.encode(frame))
            if i in (2, 6):
                cue = av.Packet(f"cue at frame {i}".encode())
                cue.stream, cue.time_base = s, Fraction(1, 1000)
                cue.pts = cue.dts = i * 40
                cue.duration = 80
                c.mux(cue)
        c.mux(v.encode(None))
    return path


def timecode_clip(folder: Path, timecode: str = "01:00:00:00", num_frames: int = 5) -> Path:
    """H.264 in MOV with a start timecode (the muxer adds a QuickTime timecode data track)."""
    path = folder / "timecode.mov"
    with av.open(str(path), mode="w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        v.options = {"preset": "ultrafast"}
        v.metadata["timecode"] = timecode
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern_image(i), format="rgb24")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    return path


def truncated_copy(src: Path, dst: Path, keep: float = 0.6) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes to ``dst`` (a cut-short file)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def image_sequence(folder: Path, num_frames: int = 12, ext: str = "png", first: int = 1,
                   digits: int = 5) -> Path:
    """A folder of numbered frames ``00001.png`` ... (DeepFaceLab's naming), pattern images.

    ``ext`` is ``"png"`` (lossless RGB) or ``"jpg"`` (baseline JPEG, 4:2:0).
    """
    folder.mkdir(parents=True, exist_ok=True)
    codec = "png" if ext == "png" else "mjpeg"
    for i in range(num_frames):
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.time_base = WIDTH, HEIGHT, Fraction(1, 25)
        ctx.pix_fmt = "rgb24" if codec == "png" else "yuvj420p"
        if codec == "mjpeg":
            ctx.color_range = 2
        frame = av.VideoFrame.from_ndarray(pattern_image(i), format="rgb24")
        if codec == "mjpeg":
            frame = frame.reformat(format="yuvj420p")
        data = b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])
        (folder / f"{first + i:0{digits}d}.{ext}").write_bytes(data)
    return folder


def audio_only(folder: Path) -> Path:
    """An M4A file holding only a short AAC tone (no video stream)."""
    path = folder / "tone.m4a"
    with av.open(str(path), mode="w", format="mp4") as c:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        tone = np.zeros((1, 1024), np.float32)
        for k in range(4):
            af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, k * 1024
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    return path


def melt_face(image: NDArray[np.uint8], landmarks: NDArray[np.floating], seed: int, amplitude_iod: float = 0.15,
              oval: bool = True) -> NDArray[np.uint8]:
    """A face-swap model breaking down: the frame resampled through a smooth random displacement
    (``amplitude_iod`` inter-ocular distances, varying over about half of one), inside the face
    oval only with ``oval`` (as bench/restore.py's ``garble``, without its feather)."""
    import cv2

    from compositing.mask import face_oval
    from synthesis.regions import inter_ocular

    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    iod = inter_ocular(landmarks)
    step = max(int(iod / 2), 4)
    field = cv2.resize(rng.normal(size=(h // step + 2, w // step + 2, 2)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC) * np.float32(amplitude_iod * iod)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = cv2.remap(image, gx + field[..., 0], gy + field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    if not oval:
        return moved
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(face_oval(landmarks).astype(np.float32)).astype(np.int32), 1)
    return np.where(mask[..., None] > 0, moved, image)
