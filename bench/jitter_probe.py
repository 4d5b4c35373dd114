"""Where the edit's extra landmark jitter comes from (prints one JSON).

For one clip and one edit (default: smile at its full strength on frames 10-29, ramp 4) it
compares, on the full-strength frames only, the jitter figure of bench/quality.py
(:func:`quality.jitter`) of: the input's raw track, the plan's ``before`` (smoothed track) and
``after`` landmarks, the re-tracked output of the edit, and the re-tracked output of zero-motion
"edits" rendered by the same EditStage (a constant sub-pixel shift of the face: it resamples the
face through the same crop, field, mask and bicubic sampling but moves nothing over time, so
any jitter it adds is the landmarker re-reading resampled pixels). It also reports the pixel-level
temporal flicker in the face box, how often ``fold_free_points`` drops a different set of
points from one frame to the next, and the renderer's landmarker-free figure
(:func:`quality.field_flicker`).

With ``--ideal`` (astronaut) it also re-tracks edits that cannot flicker: the still edited once
and animated by the demo's exact homographies and encoding, and imperceptible static changes of
the still (sub-pixel shift, +2 grey levels): how far the figure moves with content alone.

    python bench/jitter_probe.py [--clip astronaut|liveportrait] [--delta smile] [--strength S]
                                 [--shifts 0.1,0.3] [--ideal] [--field-only] [--no-variants]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from quality import FIXTURES, FULL, RAMP, Bench, cut_clip, field_flicker, jitter, log  # noqa: E402

import plugin.demo as demo  # noqa: E402
from compositing.crop import crop_for_landmarks  # noqa: E402
from plugin.analyze import run_analysis  # noqa: E402
from plugin.demo import ASTRONAUT_FACE_CENTRE, MotionSettings, motion_homographies, write_demo_clip  # noqa: E402
from plugin.editing import (  # noqa: E402
    KEEP_EXACT,
    EditStage,
    RenderConfig,
    to_crop,
    fold_free_points,
    render_face,
    warp_points,
)
from plugin.video import VideoReader  # noqa: E402
from plugin.writer import OutputConfig, VideoWriter  # noqa: E402
from synthesis.controls import named_controls  # noqa: E402
from synthesis.plan import FacePlan, PlanConfig  # noqa: E402


def render_plan(bench: Bench, plan: FacePlan, out: Path, config: RenderConfig) -> tuple[Any, list[np.ndarray]]:
    """Render ``plan`` with EditStage to lossless ``out``; the re-tracked track and the frames."""
    h, w = bench.frames[0].shape[:2]
    stage = EditStage([plan], (h, w), config)
    images = []
    with VideoReader(bench.clip) as reader:
        with VideoWriter(out, reader, OutputConfig(codec="ffv1", overwrite=True), {}) as writer:
            for f in reader:
                for g in stage.push(f):
                    images.append(g.image)
                    writer.write(g)
    tracks = [t for t in run_analysis(out, cache_dir=bench.work / "cache_probe", use_cache=False).analysis.tracks
              if len(t.frame_indices)]
    out.unlink()
    return max(tracks, key=lambda t: len(t.frame_indices)), images


def full_rows(plan: FacePlan) -> np.ndarray:
    return np.flatnonzero((plan.frame_indices >= FULL[0]) & (plan.frame_indices <= FULL[1]))


def out_jitter(bench: Bench, track: Any) -> float:
    _, b = bench.rows(track, range(FULL[0], FULL[1] + 1))
    return round(jitter(track.raw_landmarks[b]), 5)


def pixel_flicker(bench: Bench, images: list[np.ndarray], plan: FacePlan) -> dict[str, float]:
    """Mean abs frame-to-frame change (0-255) in the union face box of the full-strength frames:
    of the input, of the output, and of the edit's own change (output - input)."""
    rows = full_rows(plan)
    pts = plan.before[rows, :, :2].reshape(-1, 2)
    (x0, y0), (x1, y1) = np.floor(pts.min(0)).astype(int), np.ceil(pts.max(0)).astype(int)
    fr = [int(plan.frame_indices[r]) for r in rows]
    a = np.stack([bench.frames[k][y0:y1, x0:x1] for k in fr]).astype(np.float64)
    b = np.stack([images[k][y0:y1, x0:x1] for k in fr]).astype(np.float64)
    d = b - a
    return {"input_dt": round(float(np.abs(np.diff(a, axis=0)).mean()), 3),
            "output_dt": round(float(np.abs(np.diff(b, axis=0)).mean()), 3),
            "edit_change_mean_abs": round(float(np.abs(d).mean()), 3),
            "edit_change_dt": round(float(np.abs(np.diff(d, axis=0)).mean()), 3),
            "edit_change_d2t": round(float(np.abs(d[2:] - 2 * d[1:-1] + d[:-2]).mean()), 3)}


def dropped_sets(plan: FacePlan, stage: EditStage) -> dict[str, Any]:
    """Landmarks ``fold_free_points`` drops in each full-strength frame (as render_face does)."""
    sets = []
    for r in full_rows(plan):
        _, _, crop = next(j for j in stage._by_frame[int(plan.frame_indices[r])])  # noqa: SLF001
        before, after = plan.before[r], plan.after[r]
        idx = warp_points(before, after)
        src, dst = to_crop(before[idx], crop), to_crop(after[idx], crop)
        keep = fold_free_points(src, dst, crop.size, stage.config.warp.anchors_per_side, np.isin(idx, KEEP_EXACT))
        sets.append(frozenset(set(idx.tolist()) - set(idx[keep].tolist())))
    changes = sum(s != t for s, t in zip(sets, sets[1:]))
    return {"dropped_per_frame": [len(s) for s in sets], "frames_whose_set_differs_from_previous": changes,
            "union": sorted(set().union(*sets))[:40]}


def demo_clip_of(still: np.ndarray, path: Path, settings: MotionSettings) -> Path:
    """The demo clip (same homographies, same encoding) animating ``still`` instead of the astronaut."""
    original = demo.astronaut_image
    demo.astronaut_image = lambda: still
    try:
        return write_demo_clip(path, settings)
    finally:
        demo.astronaut_image = original


def raw_jitter_of(clip: Path, cache: Path) -> float:
    tracks = [t for t in run_analysis(clip, cache_dir=cache, use_cache=False).analysis.tracks if len(t.frame_indices)]
    t = max(tracks, key=lambda t: len(t.frame_indices))
    rows = np.flatnonzero((t.frame_indices >= FULL[0]) & (t.frame_indices <= FULL[1]))
    return round(jitter(t.raw_landmarks[rows]), 5)


def ideal_edits(plan: FacePlan, work: Path, settings: MotionSettings, config: RenderConfig) -> dict[str, float]:
    """Astronaut only: the edit of frame ``k`` taken back to the still (inverse homography),
    rendered ONCE on the still and animated by the demo's exact motion: an edit with no
    flicker by construction. Plus imperceptible static changes of the still (the figure's
    spread from content alone)."""
    still = demo.astronaut_image()
    homs = motion_homographies((still.shape[1], still.shape[0]), ASTRONAUT_FACE_CENTRE, settings)

    def to_still(p: np.ndarray, k: int) -> np.ndarray:
        q = np.c_[p[:, :2], np.ones(len(p))] @ np.linalg.inv(homs[k]).T
        out = p.astype(np.float64).copy()
        out[:, :2] = q[:, :2] / q[:, 2:]
        return out.astype(np.float32)

    out: dict[str, float] = {}
    for k in (12, 20, 27):
        row = int(np.searchsorted(plan.frame_indices, k))
        b, a = to_still(plan.before[row], k), to_still(plan.after[row], k)
        crop = crop_for_landmarks(np.concatenate([b, a]), still.shape[:2], None)
        edited, _ = render_face(still, b, a, crop, config)
        log(f"[ideal] still edited as frame {k}")
        out[f"ideal_edit_of_frame_{k}"] = raw_jitter_of(demo_clip_of(edited, work / f"ideal{k}.mp4", settings),
                                                        work / "cache_ideal")
    shift = np.float32([[1, 0, 0.5], [0, 1, 0]])
    static = {"still_shift_0.5px": cv2.warpAffine(still, shift, still.shape[1::-1], flags=cv2.INTER_CUBIC,
                                                  borderMode=cv2.BORDER_REFLECT101),
              "still_plus_2_grey": np.clip(still.astype(np.int16) + 2, 0, 255).astype(np.uint8)}
    for name, img in static.items():
        log(f"[ideal] {name}")
        out[name] = raw_jitter_of(demo_clip_of(img, work / f"{name}.mp4", settings), work / "cache_ideal")
    return out


def _plan_config(delta: str) -> PlanConfig:
    """Pose edits unclamped, as bench/quality.py runs them."""
    return PlanConfig(clamp_to_range=not delta.startswith("head_"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="astronaut")
    ap.add_argument("--delta", default="smile")
    ap.add_argument("--strength", type=float, default=None)
    ap.add_argument("--shifts", default="0.3", help="zero-motion edits: constant shifts, frame px (comma list)")
    ap.add_argument("--field-only", action="store_true", help="stop after the renderer-only figures")
    ap.add_argument("--ideal", action="store_true", help="astronaut: flicker-free ideal edits and static changes")
    ap.add_argument("--no-variants", action="store_true", help="skip the render-setting variants")
    args = ap.parse_args()
    report: dict[str, Any] = {"clip": args.clip, "delta": args.delta, "full_strength_frames": list(FULL)}
    render = RenderConfig()
    with tempfile.TemporaryDirectory(prefix="deltaface-jitter-") as tmp:
        work = Path(tmp)
        if args.clip == "astronaut":
            clip = write_demo_clip(work / "astronaut.mp4", MotionSettings(num_frames=40))
        else:
            clip = cut_clip(FIXTURES / "liveportrait_d0.mp4", work / "liveportrait40.mp4", 40)
        bench = Bench(args.clip, clip, work, render)
        strength = args.strength if args.strength is not None else named_controls()[args.delta].max_strength
        report["strength"] = strength
        log(f"[{args.clip}] edit {args.delta} {strength}")
        res = bench.edit([(args.delta, strength)], _plan_config(args.delta), frames=FULL, ramp=RAMP)
        plan = res["summary"].plans[0]
        rows = full_rows(plan)
        a, _ = bench.rows(bench.track, range(FULL[0], FULL[1] + 1))
        report["jitter"] = {
            "input_raw": round(jitter(bench.track.raw_landmarks[a]), 5),
            "input_smoothed_track": round(jitter(bench.track.landmarks[a]), 5),
            "plan_before": round(jitter(plan.before[rows]), 5),
            "plan_after": round(jitter(plan.after[rows]), 5),
            "plan_change_only": round(jitter(plan.before[rows] + (plan.after[rows] - plan.before[rows])
                                             - plan.before[rows] + plan.before[rows][:1]), 5),
            "output_edit_run_edit": out_jitter(bench, res["track"]),
        }
        report["pixels_edit"] = pixel_flicker(bench, res["images"], plan)
        h, w = bench.frames[0].shape[:2]
        stage = EditStage([plan], (h, w), render)
        report["fold_drops"] = dropped_sets(plan, stage)
        report["field"] = field_flicker(plan, stage)
        report["field_no_fold_drop"] = field_flicker(plan, EditStage([plan], (h, w), dataclasses.replace(
            render, drop_folding_points=False)))
        if args.field_only:
            print(json.dumps(report, indent=1))
            return
        for shift in (float(v) for v in args.shifts.split(",")):
            shifted = dataclasses.replace(plan, after=plan.before + np.array([shift, 0.0, 0.0], np.float32))
            log(f"[{args.clip}] zero-motion shift {shift}")
            t, imgs = render_plan(bench, shifted, work / "shift.mkv", render)
            report["jitter"][f"output_zero_motion_shift_{shift}px"] = out_jitter(bench, t)
            report[f"pixels_zero_motion_{shift}"] = pixel_flicker(bench, imgs, shifted)
        if args.ideal and args.clip == "astronaut":
            report["jitter_ideal"] = ideal_edits(plan, work, MotionSettings(num_frames=40), render)
        if not args.no_variants:
            variants = {"edit_no_fold_drop": dataclasses.replace(render, drop_folding_points=False),
                        "edit_linear": dataclasses.replace(render, interpolation="linear")}
            for name, cfg in variants.items():
                log(f"[{args.clip}] {name}")
                t, imgs = render_plan(bench, plan, work / f"{name}.mkv", cfg)
                report["jitter"][f"output_{name}"] = out_jitter(bench, t)
                report["pixels_" + name] = pixel_flicker(bench, imgs, plan)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
