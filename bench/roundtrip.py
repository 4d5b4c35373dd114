"""Round trip every fixture clip through VideoReader + VideoWriter (FFV1) and check it (prints JSON).

For each clip in ``../shared/fixtures`` and each FFV1 container (NUT, Matroska), and for comparison
H.264 in MP4: frame count,
pts sequence (as exact times), frame intervals, audio packets byte for byte, and every frame bit for
bit after decoding the output. Frames are compared streaming (two readers in lockstep), so memory
stays flat. Also measures VideoReader decode speed (with RGB conversion) on a generated 1080p clip
and ``frame_at`` latency on every fixture.

    python bench/roundtrip.py [--fixtures DIR] [--containers nut,mkv] [--frames N]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.video import VideoReader  # noqa: E402
from plugin.writer import OutputConfig, VideoWriter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)
        return [bytes(p) for p in c.demux(streams) if p.size] if streams else []


def round_trip(clip: Path, out: Path, frames: int | None, config: OutputConfig) -> dict[str, object]:
    t0 = time.perf_counter()
    with VideoReader(clip) as reader:
        stop = reader.info.num_frames if frames is None else min(frames, reader.info.num_frames)
        with VideoWriter(out, reader, config) as writer:
            for f in reader.frames(0, stop):
                writer.write(f)
    seconds = time.perf_counter() - t0
    t_in: list[Fraction] = []
    t_out: list[Fraction] = []
    identical = 0
    mad = 0.0
    with VideoReader(clip) as a, VideoReader(out) as b:
        for fa, fb in zip(a.frames(0, stop), b, strict=True):
            t_in.append(fa.pts * fa.time_base)
            t_out.append(fb.pts * fb.time_base)
            identical += bool(np.array_equal(fa.image, fb.image))
            mad += float(np.abs(fa.image.astype(np.int16) - fb.image).mean()) / stop
        n_out = b.info.num_frames
    offsets = {b - a for a, b in zip(t_in, t_out)}
    deltas_in = [y - x for x, y in zip(t_in, t_in[1:])]
    deltas_out = [y - x for x, y in zip(t_out, t_out[1:])]
    a_in, a_out = audio_packets(clip), audio_packets(out)
    return {
        "frames_in": stop,
        "frames_out": n_out,
        "pts_equal": t_in == t_out,
        "frame_intervals_equal": deltas_in == deltas_out,
        "time_offset_s": [float(o) for o in sorted(offsets)][:3],
        "max_pts_error_s": writer.max_pts_error_s,
        "audio_packets": [len(a_in), len(a_out)],
        "audio_identical": a_in == a_out,
        "frames_bit_identical": identical == stop,
        "mean_abs_diff": round(mad, 3),
        "skipped_streams": writer.skipped_streams,
        "write_fps": round(stop / seconds, 1),
        "output_mb": round(out.stat().st_size / 1e6, 2),
    }


def decode_speed(work: Path, height: int = 1080, num_frames: int = 90) -> dict[str, float]:
    """VideoReader fps (decode + RGB conversion) on a generated 1080p H.264 clip."""
    width = height * 16 // 9
    clip = work / f"synthetic_{height}p.mp4"
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 40, (height, width), dtype=np.uint8)
    with av.open(str(clip), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(num_frames):
            img = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx // 2 + yy // 2) % 256], -1)
            img = (img.astype(np.uint16) + texture[..., None]).clip(0, 255).astype(np.uint8)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    t0 = time.perf_counter()
    with VideoReader(clip) as reader:
        n = sum(1 for _ in reader)
    reader_fps = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with av.open(str(clip)) as c:
        c.streams.video[0].thread_type = "AUTO"
        m = sum(1 for _ in c.decode(video=0))
    raw_fps = m / (time.perf_counter() - t0)
    return {"frames": n, "reader_fps_rgb": round(reader_fps, 1), "pyav_decode_only_fps": round(raw_fps, 1)}


def seek_latency(clip: Path, samples: int = 10) -> dict[str, object]:
    with VideoReader(clip) as reader:
        idx = random.Random(0).sample(range(reader.info.num_frames), samples)
        times = []
        for i in idx:
            t0 = time.perf_counter()
            reader.frame_at(i)
            times.append(time.perf_counter() - t0)
        keys = len(reader._index.keys)  # noqa: SLF001 (benchmark introspection)
    return {"keyframes": keys, "frames": reader.info.num_frames,
            "median_s": round(float(np.median(times)), 3), "max_s": round(max(times), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, default=REPO / ".." / "shared" / "fixtures")
    ap.add_argument("--containers", default="nut,mkv", help="FFV1 containers to try")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default: all)")
    ap.add_argument("--no-speed", action="store_true", help="skip the 1080p decode measurement")
    args = ap.parse_args()
    clips = sorted(args.fixtures.resolve().glob("*.mp4"))
    result: dict[str, object] = {"pyav": av.__version__, "ffmpeg": str(av.ffmpeg_version_info),
                                 "machine": platform.machine(), "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ffv1 = OutputConfig("ffv1", overwrite=True)
        h264 = OutputConfig("h264", preset="veryfast", overwrite=True)
        for clip in clips:
            runs = {f"ffv1_{ext}": round_trip(clip, work / f"{clip.stem}.{ext}", args.frames, ffv1)
                    for ext in args.containers.split(",")}
            # For comparison: lossy, but MP4 keeps the timeline exactly (edit lists).
            runs["h264_mp4"] = round_trip(clip, work / f"{clip.stem}.mp4", args.frames, h264)
            result["clips"][clip.name] = runs
        if not args.no_speed:
            result["decode_1080p"] = decode_speed(work)
            result["frame_at"] = {clip.name: seek_latency(clip) for clip in clips}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
