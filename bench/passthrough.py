"""Pass-through limits: decode, encode and pass-through speed at 720p and 1080p (prints JSON).

These are the ceilings later work is measured against (render fps / pass-through fps, same run).
The clip is generated here: the demo's moving astronaut, scaled into a 16:9 frame with a textured
background, so the encoder sees real image content and real motion.

    python bench/passthrough.py [--frames 120] [--sizes 720,1080] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.demo import ASTRONAUT_FACE_CENTRE, MotionSettings, astronaut_image, motion_homographies, render_motion_frames  # noqa: E402
from plugin.pipeline import RenderJob, run_render  # noqa: E402
from plugin.video import VideoReader  # noqa: E402
from plugin.writer import OutputConfig, VideoWriter  # noqa: E402


def make_clip(path: Path, height: int, num_frames: int, fps: int = 25,
              region: tuple[slice, slice] | None = None, faces: int = 1) -> None:
    """Write an H.264 clip of the moving astronaut on a textured 16:9 background.

    ``region`` (rows, columns of the 512x512 still) is what fills the square placed in the frame:
    the whole portrait by default (a small face), or e.g. just the head. ``faces`` copies of it
    stand side by side (the second mirrored, so that they are not the same image).
    """
    width = (height * 16 // 9) // 2 * 2
    still = astronaut_image()
    homs = motion_homographies((512, 512), ASTRONAUT_FACE_CENTRE, MotionSettings(num_frames=num_frames))
    stills = render_motion_frames(still, homs)
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    side = min(int(height * 0.8), int(width * 0.9) // faces) // 2 * 2
    gap = (width - faces * side) // (faces + 1)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "18", "preset": "ultrafast"}
        for i, face in enumerate(stills):
            img = np.roll(texture, 4 * i, axis=1).copy()
            part = cv2.resize(face if region is None else face[region], (side, side), interpolation=cv2.INTER_LINEAR)
            y0 = (height - side) // 2
            for k in range(faces):
                x0 = width // 3 if faces == 1 else gap + k * (side + gap)
                img[y0:y0 + side, x0:x0 + side] = part if k % 2 == 0 else part[:, ::-1]
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))


def measure(clip: Path, work: Path) -> dict[str, float]:
    result: dict[str, float] = {}
    t0 = time.perf_counter()
    with VideoReader(clip) as reader:
        info = reader.info
        frames = list(reader)
    result["decode_fps"] = len(frames) / (time.perf_counter() - t0)
    for preset in ("ultrafast", "veryfast"):
        out = work / f"enc_{preset}.mp4"
        config = OutputConfig(codec="h264", preset=preset, overwrite=True)
        t0 = time.perf_counter()
        with VideoWriter(out, info, config, {}) as writer:
            for f in frames:
                writer.write(f)
        result[f"encode_x264_{preset}_fps"] = len(frames) / (time.perf_counter() - t0)
    for preset in ("ultrafast", "veryfast"):
        config = OutputConfig(codec="h264", preset=preset, overwrite=True)
        summary = run_render(RenderJob(input=clip, output=work / f"pt_{preset}.mp4", output_config=config))
        result[f"passthrough_x264_{preset}_fps"] = summary.fps
    return {k: round(v, 2) for k, v in result.items()} | {"frames": len(frames), "width": info.width,
                                                          "height": info.height}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--sizes", default="720,1080")
    args = ap.parse_args()
    report: dict[str, object] = {
        "bench": "passthrough",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "av": av.__version__},
        "results": {},
    }
    with tempfile.TemporaryDirectory(prefix="deltaface-bench-") as tmp:
        work = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            clip = work / f"clip_{size}p.mp4"
            make_clip(clip, size, args.frames)
            report["results"][f"{size}p"] = measure(clip, work)  # type: ignore[index]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
