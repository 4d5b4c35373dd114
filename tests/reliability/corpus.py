"""Bad, odd and hostile inputs made on the spot, and a cheap way to run the CLI on many of them.

Every generator writes into a folder the caller owns (pytest's ``tmp_path``) and returns the
path it made. Files are tiny (bytes to a few hundred kB) and take milliseconds to make, except
the face clips, which run the demo's renderer on a few 512x512 frames.

:func:`run_cli_many` runs ``deltaface ARGS`` for each call in its own process, forked from one
interpreter that has already imported deltaface (as ``python -m plugin`` would on its own): the
exit code, stdout and stderr are those of a real process, but the 2-3 s of start-up (torch is
imported by the CLI) is paid once rather than once a call.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from tests.plugin.media import (
    audio_only,
    pattern_image,
    rotated_clip,
    ten_bit_clip,
    vfr_clip,
    write_clip,
    yuv444_clip,
)

REPO = Path(__file__).resolve().parents[2]

#: Side of the crafted over-limit PNG: 9000 x 9000 = 81 Mpx, above plugin.probe.MAX_FRAME_PIXELS.
HUGE_SIDE = 9000


# ---------------------------------------------------------------------------------------------
# Inputs


def zero_byte(folder: Path) -> Path:
    """An empty file named ``.mp4``."""
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def text_as_mp4(folder: Path) -> Path:
    """A text file named ``.mp4``."""
    path = folder / "notes.mp4"
    path.write_text("this is a shopping list, not a video\n" * 20)
    return path


def truncated_mp4(folder: Path, faststart: bool = False, keep: float = 0.6) -> Path:
    """An H.264 MP4 cut at ``keep`` of its bytes, as a copy interrupted halfway leaves it.

    Without ``faststart`` the index (``moov``) sits at the end and is lost: nothing can be read.
    With it the index survives and promises frames whose data is gone.
    """
    name = "cut_faststart.mp4" if faststart else "cut.mp4"
    whole = write_clip(folder / f".whole_{name}", num_frames=30,
                       container_options={"movflags": "faststart"} if faststart else None)
    data = whole.read_bytes()
    whole.unlink()
    path = folder / name
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _box_payload(data: bytes, box: bytes) -> tuple[int, int]:
    """(start, end) byte offsets of the payload of the first top-level MP4 box of type ``box``."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = len(data) - pos
        if kind == box:
            return pos + header, pos + size
        pos += size
    raise ValueError(f"no {box!r} box")


def corrupt_mp4(folder: Path) -> Path:
    """An H.264 MP4 whose ``mdat`` has 2 kB of noise written over its middle (sizes intact)."""
    path = write_clip(folder / "corrupt.mp4", num_frames=30, width=128, height=96,
                      codec_options={"g": "10", "crf": "20"})
    data = bytearray(path.read_bytes())
    start, end = _box_payload(bytes(data), b"mdat")
    mid = (start + end) // 2
    noise = np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    data[mid:mid + len(noise)] = noise[: max(0, min(len(noise), end - mid))]
    path.write_bytes(bytes(data))
    return path


def corrupt_ts(folder: Path) -> Path:
    """H.264 in MPEG-TS with a run of 188-byte transport packets overwritten by noise.

    The noise hits sync bytes, continuity counters and PES headers: the demuxer has to resync.
    """
    path = write_clip(folder / "corrupt.ts", num_frames=30, width=128, height=96,
                      codec_options={"g": "10", "crf": "20"})
    data = bytearray(path.read_bytes())
    mid = (len(data) // 2) // 188 * 188
    noise = np.random.default_rng(2).integers(0, 256, 188 * 6, dtype=np.uint8).tobytes()
    data[mid:mid + len(noise)] = noise
    path.write_bytes(bytes(data))
    return path


def audio_only_file(folder: Path) -> Path:
    """An M4A holding only an AAC tone (no video stream)."""
    return audio_only(folder)


def _ffv1_clip(path: Path, images: Sequence[NDArray[np.uint8]], pix_fmt: str) -> Path:
    h, w = images[0].shape[:2]
    with av.open(str(path), mode="w") as c:
        v = c.add_stream("ffv1", rate=25)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    return path


def one_pixel(folder: Path) -> Path:
    """A 1x1 clip (FFV1, RGB, 5 frames): every frame one grey level."""
    images = [np.full((1, 1, 3), 40 * i + 20, np.uint8) for i in range(5)]
    return _ffv1_clip(folder / "one_pixel.mkv", images, "bgr0")


def odd_size(folder: Path) -> Path:
    """A 33x17 H.264 clip (4:4:4, which allows odd sizes), 8 frames."""
    return write_clip(folder / "odd_33x17.mp4", num_frames=8, width=33, height=17, pix_fmt="yuv444p")


def ten_bit(folder: Path) -> Path:
    """10-bit 4:2:0 H.264 (High 10), 8 frames."""
    return ten_bit_clip(folder)


def yuv444(folder: Path) -> Path:
    """8-bit 4:4:4 H.264, 8 frames."""
    return yuv444_clip(folder)


def rotated(folder: Path) -> Path:
    """H.264 with a 90-degree display rotation, 6 frames of 64x48 (displayed 48x64)."""
    return rotated_clip(folder, 90)


def variable_rate(folder: Path) -> Path:
    """Variable-frame-rate H.264 in MP4 (irregular pts, start pts 507), 20 frames."""
    return vfr_clip(folder)


def _rgba_images(n: int, width: int = 64, height: int = 48) -> list[NDArray[np.uint8]]:
    out = []
    for i in range(n):
        rgb = pattern_image(i, width, height)
        alpha = np.zeros((height, width, 1), np.uint8)
        alpha[:, : width // 2] = 255  # left half opaque, right half transparent
        out.append(np.concatenate([rgb, alpha], axis=-1))
    return out


def prores_alpha(folder: Path) -> Path:
    """ProRes 4444 with an alpha channel (left half opaque, right half clear) in MOV, 6 frames."""
    path = folder / "alpha_4444.mov"
    with av.open(str(path), mode="w") as c:
        v = c.add_stream("prores_ks", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuva444p10le"
        v.options = {"profile": "4", "alpha_bits": "16"}
        for i, img in enumerate(_rgba_images(6)):
            frame = av.VideoFrame.from_ndarray(img, format="rgba").reformat(format="yuva444p10le")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    return path


def png_rgba_sequence(folder: Path) -> Path:
    """A folder of 6 numbered RGBA PNGs (left half opaque, right half clear)."""
    seq = folder / "rgba_frames"
    seq.mkdir()
    for i, img in enumerate(_rgba_images(6)):
        ctx = av.CodecContext.create("png", "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 64, 48, "rgba", Fraction(1, 25)
        frame = av.VideoFrame.from_ndarray(img, format="rgba")
        (seq / f"{i + 1:05d}.png").write_bytes(b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)]))
    return seq


def no_faces(folder: Path) -> Path:
    """A 128x96 clip of moving colour waves: no face anywhere, 12 frames."""
    return write_clip(folder / "no_faces.mp4", num_frames=12, width=128, height=96)


def _face_frames(num_frames: int) -> list[NDArray[np.uint8]]:
    from plugin.demo import ASTRONAUT_FACE_CENTRE, MotionSettings, astronaut_image, motion_homographies
    from plugin.demo import render_motion_frames

    still = astronaut_image()
    homs = motion_homographies((still.shape[1], still.shape[0]), ASTRONAUT_FACE_CENTRE,
                               MotionSettings(num_frames=num_frames))
    return [np.asarray(f) for f in render_motion_frames(still, homs)]


#: Frames of :func:`faces_come_and_go` that show the face (the others are a plain wall).
FACE_FRAMES = (0, 1, 2, 3, 8, 9, 10, 11)


def faces_come_and_go(folder: Path, num_frames: int = 12) -> Path:
    """The demo's astronaut (512x512) in frames :data:`FACE_FRAMES` only; a grey wall between."""
    faces = _face_frames(num_frames)
    wall = np.full_like(faces[0], 128)
    images = [faces[i] if i in FACE_FRAMES else wall for i in range(num_frames)]
    return write_clip(folder / "faces_come_and_go.mp4", images=images)


def size_change_ts(folder: Path) -> Path:
    """H.264 in MPEG-TS that switches from 64x48 to 96x64 at frame 10 (two streams spliced).

    Each part carries its own in-band parameter sets, so the decoder follows the change.
    """
    parts = [write_clip(folder / ".a.ts", num_frames=10),
             write_clip(folder / ".b.ts", num_frames=10, width=96, height=64)]
    path = folder / "size_change.ts"
    with av.open(str(path), mode="w") as out:
        offset = 0
        stream = None
        for part in parts:
            with av.open(str(part)) as src:
                if stream is None:
                    stream = out.add_stream_from_template(src.streams.video[0])
                last = offset
                for pkt in src.demux(video=0):
                    if pkt.dts is None:
                        continue
                    pkt.pts, pkt.dts = pkt.pts + offset, pkt.dts + offset
                    last = max(last, pkt.pts)
                    pkt.stream = stream
                    out.mux(pkt)
                offset = last + 3600  # one frame at 25 fps in 1/90000 s
            part.unlink()
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(folder: Path, side: int = HUGE_SIDE) -> Path:
    """A valid ``side`` x ``side`` 1-bit black PNG of about 10 kB (81 Mpx when decoded to RGB).

    Decoding it to RGB takes ``3 * side**2`` bytes (243 MB at 9000): a decompression bomb.
    """
    raw = zlib.compress(bytes(side * (1 + (side + 7) // 8)), 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path = folder / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", raw)
                     + _png_chunk(b"IEND", b""))
    return path


def huge_png_sequence(folder: Path, side: int = HUGE_SIDE) -> Path:
    """A folder holding one :func:`huge_png` frame as ``00001.png``."""
    seq = folder / "huge_frames"
    seq.mkdir()
    huge_png(seq, side).rename(seq / "00001.png")
    return seq


#: Every generator of the corpus, by case name.
GENERATORS: dict[str, Callable[[Path], Path]] = {
    "zero_byte": zero_byte,
    "text_as_mp4": text_as_mp4,
    "truncated_mp4": truncated_mp4,
    "truncated_faststart_mp4": lambda folder: truncated_mp4(folder, faststart=True),
    "corrupt_mdat_mp4": corrupt_mp4,
    "corrupt_ts": corrupt_ts,
    "audio_only": audio_only_file,
    "one_pixel": one_pixel,
    "odd_33x17": odd_size,
    "ten_bit": ten_bit,
    "yuv444": yuv444,
    "rotated_90": rotated,
    "vfr": variable_rate,
    "prores_4444_alpha": prores_alpha,
    "png_rgba_sequence": png_rgba_sequence,
    "no_faces": no_faces,
    "faces_come_and_go": faces_come_and_go,
    "size_change_ts": size_change_ts,
    "huge_png": huge_png,
    "huge_png_sequence": huge_png_sequence,
}


def build_corpus(folder: Path) -> dict[str, Path]:
    """Make every input of :data:`GENERATORS`, each in its own sub-folder of ``folder``."""
    out = {}
    for name, make in GENERATORS.items():
        sub = folder / name
        sub.mkdir(parents=True)
        out[name] = make(sub)
    return out


def tree_digest(path: Path) -> str:
    """sha256 over a file's bytes, or over a folder's file names and bytes (sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Running the CLI


@dataclass(frozen=True)
class CliRun:
    """One ``deltaface`` process: its arguments, exit code, output, wall time and peak memory.

    ``max_rss_kb`` is the child's peak resident size, pages shared with the warm parent included
    (about 0.35 GB: torch is imported).
    """

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_kb: int


def run_cli_many(calls: Sequence[Sequence[str | os.PathLike[str]]], timeout_s: float = 120.0) -> list[CliRun]:
    """Run ``deltaface *call`` for each call, each in its own forked process.

    Args:
        calls: argument lists, as after ``python -m plugin``.
        timeout_s: a call running longer is killed (its exit code is then -9).

    Returns:
        One :class:`CliRun` per call, in order.
    """
    payload = json.dumps({"calls": [[str(a) for a in c] for c in calls], "timeout_s": timeout_s})
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DELTAFACE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.corpus"], input=payload,
                          capture_output=True, text=True, env=env,
                          timeout=30 + timeout_s * max(len(calls), 1))
    if proc.returncode != 0:
        raise RuntimeError(f"CLI driver failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [CliRun(tuple(r["args"]), r["returncode"], r["stdout"], r["stderr"], r["seconds"],
                   r["max_rss_kb"]) for r in json.loads(proc.stdout)]


def _run_forked(args: list[str], timeout_s: float, scratch: Path) -> dict[str, object]:
    out_file, err_file = scratch / "stdout", scratch / "stderr"
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: what `python -m plugin ARGS` does, with its streams in files
        rc = 1
        try:
            fd_out = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            fd_err = os.open(err_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            from plugin.__main__ import main

            rc = main(args)
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - reported as the interpreter would report it
            import traceback

            traceback.print_exc()
            rc = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001 - nothing left to report to
                    pass
            os._exit(rc)
    deadline = started + timeout_s
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            _, _, usage = os.wait4(pid, 0)
            rc = -9
            break
        time.sleep(0.005)
    return {"args": args, "returncode": rc, "seconds": round(time.monotonic() - started, 3),
            "max_rss_kb": usage.ru_maxrss,
            "stdout": out_file.read_text(errors="replace"),
            "stderr": err_file.read_text(errors="replace")}


def _driver() -> None:
    """Read ``{"calls": [[...], ...], "timeout_s": T}`` on stdin, print results as JSON."""
    import tempfile

    request = json.loads(sys.stdin.read())
    # As plugin.__main__.main sets them, before mediapipe can be imported.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import plugin.__main__  # noqa: F401 - warm: what every child would import
    import plugin.cli  # noqa: F401
    import plugin.commands  # noqa: F401
    import plugin.pipeline  # noqa: F401

    results = []
    with tempfile.TemporaryDirectory(prefix="deltaface-cli-") as tmp:
        for args in request["calls"]:
            results.append(_run_forked(args, float(request["timeout_s"]), Path(tmp)))
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    _driver()
