"""CPU milliseconds per part of the edit stage, per edited face and frame (JSON).

Builds (once, cached under ``--work``) a clip of the moving astronaut's head (bench/perf.py's
clip) at ``--height``, analyses it, plans ``--edits`` on its face and pushes ``--frames`` frames
through :func:`plugin.editing.render_face` (no texture hook: texture is profiled elsewhere) on
``--threads`` torch threads (1 by default, as bench/perf.py runs the render pass:
``OMP_NUM_THREADS=1``). With ``--stage`` the frames go, in clip order, through the edit stage
itself (``EditStage.push``) with texture from other frames, as ``deltaface edit`` and bench/perf.py's
edit step run it: the whole per-frame cost of the render pass's edit workers, on one thread
(``cpu_ms_per_frame``), with the texture hook and the lending frames' decoding among the parts.

Every part is timed with ``time.process_time`` around the call (inclusive); a part called from
inside another is reported under ``parent/child``; with ``--repeat`` each part reports the least
of the repeats (other processes on the same cores inflate CPU time too). ``--save`` keeps the
edited frames (``.npz``) and ``--compare`` reports the pixel difference against saved ones (max
and mean absolute difference over the pixels either version changed, how many differ by more
than 2 levels) and writes a PNG of the worst frame's difference (x8) next to the reference.
To compare two versions of the code, run this script from each checkout (it puts its own
checkout first on ``sys.path``) with the same ``--work``.

    python bench/edit_profile.py [--height 1080] [--frames 12] [--edits smile:0.7] [--repeat 3]
                                 [--threads 1] [--stage] [--work DIR] [--save out.npz] [--compare ref.npz]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
FPS = 25
HEAD = (slice(0, 300), slice(78, 378))  # as bench/perf.py

#: (module, attribute) pairs wrapped with a CPU timer; a function is wrapped wherever it is
#: looked up (``from x import f`` copies the name into the caller's module).
PARTS: dict[str, tuple[str, ...]] = {
    "plugin.editing": ("face_field", "warp_points", "fold_free_points", "_field", "build_field", "triangulate",
                       "flipped_triangles", "jacobian_det", "face_region_mask", "motion_weight", "support_box",
                       "sample_frame_through_field", "blend", "snap", "warp_blend_lerp",
                       "blend_mask", "field_support", "face_warp", "apply_warp"),
    "plugin.texture_stage": ("transfer_region",),
    "plugin.exemplar_frames": ("ExemplarFrames.get",),
    "synthesis.warpfield": ("triangulate", "flipped_triangles", "tps_displacement", "pa_interpolate",
                            "jacobian_det", "_displacement", "border_taper", "farthest_point_subset"),
    # (triangulate, flipped_triangles and pa_interpolate live in synthesis.piecewise; wrapped
    # here, they are timed where build_field looks them up)
}

_stack: list[str] = []
_cpu: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = "/".join([*_stack, name])
        _stack.append(name)
        t0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _cpu[key] += time.process_time() - t0
            _calls[key] += 1
            _stack.pop()

    return wrapper


def _instrument() -> None:
    import importlib

    for mod_name, names in PARTS.items():
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:  # an older checkout (run from another tree to compare)
            continue
        for name in names:
            owner, _, attr = name.rpartition(".")
            target = getattr(mod, owner) if owner else mod
            if hasattr(target, attr):
                setattr(target, attr, _timed(name, getattr(target, attr)))


def _prepare(work: Path, height: int, frames: int, edits: list[tuple[str, float]],
             texture: bool = False) -> tuple[Any, Path]:
    from passthrough import make_clip

    from plugin.analyze import run_analysis
    from plugin.edit_job import prepare_edit
    from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve

    work.mkdir(parents=True, exist_ok=True)
    clip = work / f"clip_{height}p_{frames}.mp4"
    if not clip.exists():
        make_clip(clip, height, frames, FPS, region=HEAD, faces=1)
    tid = run_analysis(clip, cache_dir=work / "cache").analysis.tracks[0].track_id
    schedule = EditSchedule(tuple(EditEntry(tid, name, StrengthCurve.constant(s)) for name, s in edits))
    from plugin.texture_stage import TextureConfig

    prepared = prepare_edit(clip, schedule, texture=TextureConfig() if texture else None, cache_dir=work / "cache")
    return prepared, clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--edits", default="smile:0.7", help="name:strength[,name:strength...]")
    ap.add_argument("--repeat", type=int, default=1, help="render every frame this many times")
    ap.add_argument("--work", type=Path, default=Path("/tmp/deltaface-edit-profile"))
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the render bench uses 1)")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--stage", action="store_true", help="push whole frames through EditStage, texture included")
    args = ap.parse_args()
    if args.stage:
        stage_profile(args)
        return

    import torch

    torch.set_num_threads(args.threads)
    edits = [(e.split(":")[0], float(e.split(":")[1])) for e in args.edits.split(",") if e]
    prepared, clip = _prepare(args.work, args.height, args.frames, edits)
    stage = prepared.stage
    from plugin import editing
    from plugin.video import VideoReader

    with VideoReader(clip) as reader:
        images = {f.index: f.image for f in reader if f.index in set(stage.edited_frames)}
    _instrument()
    outputs: dict[int, np.ndarray] = {}
    render = _timed("render_face", editing.render_face)
    runs: list[dict[str, float]] = []
    faces = 0
    for _ in range(args.repeat):
        _cpu.clear()
        _calls.clear()
        faces = 0
        for index in sorted(images):
            image = images[index]
            for plan, row, crop in stage._by_frame[index]:  # noqa: SLF001 (a bench reaches in)
                image, _ = render(image, plan.before[row], plan.after[row], crop, stage.config, stage.device)
                faces += 1
            outputs[index] = image
        runs.append({k: 1000.0 * v / faces for k, v in _cpu.items()})
    # Other processes share the cores: the least CPU time of the repeats is the least disturbed.
    per = {k: round(min(r.get(k, 0.0) for r in runs), 2) for k in sorted(runs[0])}
    report: dict[str, Any] = {
        "bench": "edit_profile", "height": args.height, "edits": args.edits, "face_frames": faces,
        "repeats": args.repeat,
        "crop_size": int(stage._by_frame[min(images)][0][2].size),  # noqa: SLF001
        "torch_threads": torch.get_num_threads(), "code": str(Path(editing.__file__).parents[1]),
        "cpu_ms_per_face": per.get("render_face", 0.0),
        "cpu_ms_per_face_median": round(float(np.median([r["render_face"] for r in runs])), 2),
        "parts_cpu_ms_per_face_min": per,
        "calls_per_face": {k: round(v / faces, 2) for k, v in sorted(_calls.items())},
    }
    if args.save:
        np.savez_compressed(args.save, **{str(k): v for k, v in outputs.items()},
                            **{f"orig_{k}": v for k, v in images.items()})
    if args.compare:
        ref = np.load(args.compare)
        diffs = []
        worst = (-1.0, None)
        for k, out in outputs.items():
            a, b = ref[str(k)].astype(np.int16), out.astype(np.int16)
            orig = images[k].astype(np.int16)
            touched = np.any((a != orig) | (b != orig), axis=2)
            d = np.abs(a - b)
            dm = d.max(axis=2)
            diffs.append({"frame": k, "max": int(d.max()), "mean_touched": round(float(d[touched].mean()), 4)
                          if touched.any() else 0.0, "px_over_2": int((dm > 2).sum()), "touched": int(touched.sum())})
            if d.max() > worst[0]:
                worst = (float(d.max()), k)
        report["compare"] = {
            "max": max(x["max"] for x in diffs),
            "mean_touched": round(float(np.mean([x["mean_touched"] for x in diffs])), 4),
            "px_over_2_per_frame": round(float(np.mean([x["px_over_2"] for x in diffs])), 1),
            "touched_per_frame": round(float(np.mean([x["touched"] for x in diffs])), 1),
        }
        if worst[1] is not None:
            import cv2

            k = worst[1]
            d = np.abs(ref[str(k)].astype(np.int16) - outputs[k].astype(np.int16)).clip(0, 31) * 8
            png = args.compare.with_name(args.compare.stem + f"_diff_{k}.png")
            cv2.imwrite(str(png), np.concatenate([outputs[k][..., ::-1], d.astype(np.uint8)[..., ::-1]], axis=1))
            report["compare"]["png"] = str(png)
    print(json.dumps(report, indent=1))


def stage_profile(args: argparse.Namespace) -> None:
    """``--stage``: every frame, in clip order, through ``EditStage.push`` with texture."""
    import torch

    torch.set_num_threads(args.threads)
    edits = [(e.split(":")[0], float(e.split(":")[1])) for e in args.edits.split(",") if e]
    prepared, clip = _prepare(args.work, args.height, args.frames, edits, texture=True)
    stage = prepared.stage
    from plugin.video import VideoReader

    with VideoReader(clip) as reader:
        frames = list(reader)
    _instrument()
    push = _timed("push", stage.push)
    runs: list[dict[str, float]] = []
    try:
        for _ in range(args.repeat):
            _cpu.clear()
            _calls.clear()
            for frame in frames:
                push(frame)
            runs.append({k: 1000.0 * v / len(frames) for k, v in _cpu.items()})
    finally:
        prepared.close()
    per = {k: round(min(r.get(k, 0.0) for r in runs), 2) for k in sorted(runs[0])}
    print(json.dumps({
        "bench": "edit_profile", "mode": "stage", "height": args.height, "edits": args.edits,
        "frames": len(frames), "repeats": args.repeat, "torch_threads": torch.get_num_threads(),
        "code": str(Path(sys.modules["plugin"].__file__).parents[1]),
        "cpu_ms_per_frame": per.get("push", 0.0),
        "cpu_ms_per_frame_median": round(float(np.median([r["push"] for r in runs])), 2),
        "parts_cpu_ms_per_frame_min": per,
        "texture_events": [{k: e[k] for k in ("region", "frames", "action")} for e in prepared.texture_events],
    }, indent=1))


if __name__ == "__main__":
    main()
