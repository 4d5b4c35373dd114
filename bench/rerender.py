"""Frame-accurate re-renders and what closed GOPs cost (prints JSON).

- ``rerender``: a 300-frame clip (the LivePortrait fixture played forward and back, 512x512,
  25 fps, AAC audio) with a smile on frames 150-159 in a project file; a full render, then the
  smile made stronger and ``--frames 150-159`` re-rendered, for H.264 (GOPs re-encoded, packets
  copied) and PNG output (files rewritten: counted by modification time).
- ``gop``: video bytes of a pass-through render of each fixture clip with deltaface's closed
  fixed GOPs of 1 s and 2 s, against x264's own GOP choice (250 frames, scene cuts), at the
  default crf 16, preset medium.

    python bench/rerender.py [--only rerender,gop]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / ".." / "shared" / "fixtures"
GOP_CLIPS = ("pcavs_audio_source_00015.mp4", "liveportrait_d0.mp4", "retalking_face_1.mp4", "ghost_2person.mp4")
#: Modification time stamped on every PNG before the partial re-render (seconds since 1970).
OLD_MTIME = 1e9


def rerender(work: Path) -> dict[str, Any]:
    from plugin.project import load_project, render_project
    from plugin.video import VideoReader
    from tests.plugin.media import write_clip

    clip = work / "clip.mp4"
    with VideoReader(FIXTURES / "liveportrait_d0.mp4") as reader:
        images = [f.image for f in reader]
    seq: list[Any] = []
    while len(seq) < 300:
        seq += images + images[::-1]
    write_clip(clip, images=seq[:300], rate=25, audio_seconds=12, codec_options={"preset": "ultrafast", "crf": "14"})

    def project(codec: str, out: str, strength: float) -> Any:
        p = work / f"{codec}.toml"
        p.write_text(f'version = 1\ninput = "clip.mp4"\n[output]\npath = "{out}"\ncodec = "{codec}"\n'
                     f'[[edit]]\nface = 0\ndelta = "smile"\nstrength = {strength}\nframes = "150-159"\nramp = 0\n')
        return load_project(p)

    cache = work / "cache"
    render_project(project("h264", "warm.mp4", 0.5), cache_dir=cache, overwrite=True)  # analysis, once
    result: dict[str, Any] = {}
    for codec, out in (("h264", "out.mp4"), ("png", "out_png")):
        t0 = time.perf_counter()
        render_project(project(codec, out, 0.5), cache_dir=cache, overwrite=True)
        full = time.perf_counter() - t0
        if codec == "png":
            for f in (work / out).iterdir():
                os.utime(f, (OLD_MTIME, OLD_MTIME))
        t0 = time.perf_counter()
        s = render_project(project(codec, out, 0.9), frames="150-159", cache_dir=cache)
        row = {"full_render_s": round(full, 2), "rerender_10_frames_s": round(time.perf_counter() - t0, 2),
               "mode": s.mode, "note": s.note, "frames_rendered": s.frames_rendered, **s.details}
        if codec == "png":
            row["files_with_new_mtime"] = sum(1 for f in (work / out).iterdir() if f.stat().st_mtime != OLD_MTIME)
        result[codec] = row
    return result


def gop_cost(work: Path) -> dict[str, Any]:
    import av

    import plugin.writer as writer
    from plugin.pipeline import RenderJob, run_render
    from plugin.writer import OutputConfig

    closed = writer.x264_gop_params
    result: dict[str, Any] = {}
    try:
        for name in GOP_CLIPS:
            row: dict[str, Any] = {}
            for label, seconds in (("x264_default", None), ("gop_1s", 1.0), ("gop_2s", 2.0)):
                writer.x264_gop_params = (lambda rate, s: "") if seconds is None else closed
                out = work / f"{Path(name).stem}.{label}.mp4"
                run_render(RenderJob(FIXTURES / name, out, OutputConfig(overwrite=True, keyframe_seconds=seconds or 2.0)))
                with av.open(str(out)) as c:
                    row[label + "_bytes"] = sum(p.size for p in c.demux(c.streams.video[0]) if p.size)
            base = row["x264_default_bytes"]
            for k in ("gop_1s", "gop_2s"):
                row[k + "_cost_pct"] = round(100 * (row[k + "_bytes"] / base - 1), 1)
            result[name] = row
    finally:
        writer.x264_gop_params = closed
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="rerender,gop")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    report: dict[str, Any] = {"bench": "rerender"}
    with tempfile.TemporaryDirectory(prefix="deltaface-rerender-") as tmp:
        for part, measure in (("rerender", rerender), ("gop", gop_cost)):
            if part in parts:
                folder = Path(tmp) / part
                folder.mkdir()
                report[part] = measure(folder)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
