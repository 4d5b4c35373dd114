"""A jaw opening the clip never shows: warp alone, clamped, and a mouth opened on the face's own
frame (prints one JSON).

liveportrait_d0.mp4 cut to its first 17 frames keeps its mouth closed (inner-lip gap 0.003-0.005
inter-ocular distances). ``jaw_open`` at ``--strength`` (1.0 by default: past the control's own
range, as a plate's open mouth in a swap repair can ask) on frames 5-11 (ramp 2) is rendered to
ffv1 three ways with ``run_edit`` and re-tracked: ``warp`` (no texture), ``clamped``
(``TextureConfig(opened_mouth=False)``: no exemplar, so the opening is clamped to what a warp
shows) and ``made`` (the default: a still of the face with its mouth opened,
``plugin.texture_stage.opened_mouth_references``). Per way, on the full-strength frames: the
re-tracked jawOpen change, the inner-lip gap planned and re-read (inter-ocular distances), and
the texture events. Crops of frame 8 (input | warp | clamped | made) go to
bench/results/mouth_opened.png.

    python bench/mouth_opening.py [--strength 1.0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from quality import FIXTURES, RESULTS, Bench, cut_clip  # noqa: E402

from plugin.editing import RenderConfig  # noqa: E402
from plugin.texture_stage import TextureConfig  # noqa: E402
from synthesis.exemplars import raw_features  # noqa: E402
from synthesis.plan import PlanConfig  # noqa: E402
from tracking.mediapipe_results import BLENDSHAPE_NAMES  # noqa: E402

CLOSED_FRAMES = 17
FULL = (5, 11)
SHOWN = 8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strength", type=float, default=1.0)
    args = ap.parse_args()
    report: dict[str, object] = {"bench": "mouth_opening", "clip": f"liveportrait_d0.mp4, frames 0-{CLOSED_FRAMES - 1}",
                                 "edit": f"jaw_open {args.strength} on frames {FULL[0]}-{FULL[1]}", "ways": {}}
    tiles: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="deltaface-mouth-") as tmp:
        work = Path(tmp)
        clip = cut_clip(FIXTURES / "liveportrait_d0.mp4", work / "closed.mp4", CLOSED_FRAMES)
        for name, texture in (("warp", None), ("clamped", TextureConfig(opened_mouth=False)), ("made", TextureConfig())):
            bench = Bench("closed", clip, work, RenderConfig())
            bench.texture = texture
            res = bench.edit([("jaw_open", args.strength)], PlanConfig(clamp_to_range=False), frames=FULL, ramp=2)
            track = res["track"]
            a, b = bench.rows(track, range(FULL[0], FULL[1] + 1))
            change = (track.raw_blendshapes[b] - bench.track.raw_blendshapes[a]).mean(axis=0)
            plan = res["summary"].plans[0]
            full = (plan.frame_indices >= FULL[0]) & (plan.frame_indices <= FULL[1])
            report["ways"][name] = {  # type: ignore[index]
                "jawOpen_change": round(float(change[BLENDSHAPE_NAMES.index("jawOpen")]), 3),
                "inner_gap_iod": {"input": round(float(raw_features(bench.track.raw_landmarks[a], "mouth")[:, 0].mean()), 3),
                                  "planned": round(float(raw_features(plan.after[full], "mouth")[:, 0].mean()), 3),
                                  "re_read": round(float(raw_features(track.raw_landmarks[b], "mouth")[:, 0].mean()), 3)},
                "texture": [{k: e[k] for k in ("region", "action", "frames") if k in e}
                            | ({"exemplars": e["exemplars"]} if "exemplars" in e else {})
                            | ({"factor": e["factor"]} if "factor" in e else {}) for e in res["summary"].texture],
            }
            p = plan.after[int(np.searchsorted(plan.frame_indices, SHOWN))]
            lo, hi = p[:, :2].min(axis=0), p[:, :2].max(axis=0)
            if not tiles:
                x0, y0 = (lo + [0.2, 0.5] * (hi - lo)).astype(int)
                x1, y1 = x0 + int(0.6 * (hi - lo)[0]), y0 + int(0.5 * (hi - lo)[1])
                tiles.append(bench.frames[SHOWN][y0:y1, x0:x1])
            tiles.append(res["images"][SHOWN][y0:y1, x0:x1])
    RESULTS.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(RESULTS / "mouth_opened.png"), cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
