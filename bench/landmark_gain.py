"""Do re-detected landmarks land where a pose edit planned them? (prints one JSON)

For head_yaw and head_pitch at +-``--degrees`` on liveportrait_d0.mp4 (frames 10-40, eased over
4), the edit is rendered warp-only to ffv1 and re-tracked. Per face part, the gain is the
least-squares factor between the planned image motion (plan ``after - before``, x and y) and the
re-detected one (output raw landmarks minus input raw landmarks) over frames 14-36:
``sum(planned * found) / sum(planned ** 2)``; 1.0 means the landmarker finds the points where
the warp put them. ``mean_motion_px`` is the planned motion's mean absolute size.

The pose readers of ``bench/quality.py`` that lean on the landmarker's depth channel read the
edits short (LivePortrait pitch +10: 7.2 degrees from MediaPipe's matrix) while these gains are
about 1: the image geometry follows the plan, the landmarker's reading of depth does not.

Most of a pose edit's image motion is a 2-D similarity (the face shifts, grows, turns in the
image plane), which any reader follows; what tells a turn out of the image plane from one in it is
the rest: the nose tip moving against the eyes, the outline sliding over the cheeks. ``out_of_plane``
takes per frame the 2-D similarity (all 468 mesh points) off the planned motion, off where the
rendered field puts the points (``bench/quality.field_landmarks``: no landmarker) and off the
re-detected motion, and gives the same gain for what is left: ``render`` (field against plan: does
the warp make it?) and ``re_detected`` (re-detected against field: does the landmarker read what
the warp made?), with ``mean_motion_px`` the planned residual's mean absolute size.

    python bench/landmark_gain.py [--degrees 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from quality import field_landmarks  # noqa: E402  (bench/quality.py)

from plugin.analyze import run_analysis  # noqa: E402
from plugin.edit_job import EditJob, run_edit  # noqa: E402
from plugin.editing import EditStage, RenderConfig  # noqa: E402
from plugin.pipeline import RenderJob  # noqa: E402
from plugin.video import VideoReader  # noqa: E402
from plugin.writer import OutputConfig  # noqa: E402
from synthesis import regions as rg  # noqa: E402
from synthesis.controls import named_controls  # noqa: E402
from synthesis.plan import plan_track  # noqa: E402
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve  # noqa: E402
from tracking.pose import similarity_fit  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "liveportrait_d0.mp4"
EDITED, MEASURED, RAMP = (10, 40), range(14, 37), 4
PARTS = {"brows": rg.LEFT_BROW + rg.RIGHT_BROW, "eyes": rg.LEFT_EYE + rg.RIGHT_EYE, "nose": rg.NOSE,
         "lips": rg.LIPS, "jaw": rg.JAW, "chin": rg.CHIN,
         "oval_above_jaw": tuple(i for i in rg.FACE_OVAL if i not in rg.JAW)}


def gain(want: np.ndarray, got: np.ndarray) -> float:
    """Least-squares factor of ``got`` on ``want`` (1: got is want)."""
    return round(float((want * got).sum() / (want * want).sum()), 3)


def off_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``(F, K, 2)``: per frame, ``dst`` less the 2-D similarity of ``src`` fitted to it."""
    out = np.empty_like(dst, dtype=np.float64)
    for f in range(src.shape[0]):
        s, r, t = similarity_fit(src[f], dst[f])
        out[f] = dst[f] - (s * src[f] @ r.T + t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--degrees", type=float, default=10.0)
    args = ap.parse_args()
    report: dict[str, Any] = {"bench": "landmark_gain", "clip": CLIP.name, "frames": [MEASURED.start, MEASURED.stop - 1]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        track = max(run_analysis(CLIP, cache_dir=work / "cache").analysis.tracks, key=lambda t: len(t.frame_indices))
        with VideoReader(CLIP) as reader:
            shape = next(iter(reader)).image.shape[:2]
        for control in ("head_yaw", "head_pitch"):
            for sign in (1, -1):
                deg = sign * args.degrees
                sched = EditSchedule((EditEntry(track.track_id, control,
                                                StrengthCurve.over_range(deg, EDITED[0], EDITED[1], RAMP)),))
                plan = plan_track(track.track_id, track.frame_indices, track.times, track.segment_ids, track.landmarks,
                                  track.blendshapes, track.confidence, sched, named_controls())
                out = work / f"{control}_{deg:g}.mp4"
                run_edit(EditJob(RenderJob(CLIP, out, OutputConfig(codec="ffv1", overwrite=True)), sched,
                                 cache_dir=work / "cache", texture=None))
                found = max(run_analysis(out, cache_dir=work / "out", use_cache=False).analysis.tracks,
                            key=lambda t: len(t.frame_indices))
                pr = np.searchsorted(plan.frame_indices, MEASURED)
                tr = np.searchsorted(track.frame_indices, MEASURED)
                fr = np.searchsorted(found.frame_indices, MEASURED)
                stage = EditStage([plan], shape, RenderConfig())
                rendered = np.stack([field_landmarks(plan, stage, int(r)) for r in pr])
                before = plan.before[pr][:, :468, :2].astype(np.float64)
                res_plan = off_similarity(before, plan.after[pr][:, :468, :2].astype(np.float64))
                res_field = off_similarity(before, rendered)
                res_found = off_similarity(track.raw_landmarks[tr][:, :468, :2].astype(np.float64),
                                           found.raw_landmarks[fr][:, :468, :2].astype(np.float64))
                parts = {}
                for name, idx in PARTS.items():
                    idx = list(idx)
                    want = plan.after[pr][:, idx, :2] - plan.before[pr][:, idx, :2]
                    got = found.raw_landmarks[fr][:, idx, :2] - track.raw_landmarks[tr][:, idx, :2]
                    parts[name] = {"gain": gain(want, got), "mean_motion_px": round(float(np.abs(want).mean()), 2),
                                   "out_of_plane": {"render": gain(res_plan[:, idx], res_field[:, idx]),
                                                    "re_detected": gain(res_field[:, idx], res_found[:, idx]),
                                                    "mean_motion_px": round(float(np.abs(res_plan[:, idx]).mean()), 2)}}
                parts["all"] = {"out_of_plane": {"render": gain(res_plan, res_field),
                                                 "re_detected": gain(res_field, res_found),
                                                 "mean_motion_px": round(float(np.abs(res_plan).mean()), 2)}}
                report[f"{control}_{deg:+g}"] = parts
                print(f"[landmark_gain] {control} {deg:+g}: {json.dumps(parts)}", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
