"""Named controls' blendshape readouts, re-detected on two real stills (prints one JSON object).

Each named expression control is applied at ``--strength`` to the astronaut still and to frame 0
of ``liveportrait_d0.mp4`` (each inverted alone with ``invert_single``), the face is warped with
the edit engine's own renderer (``plugin.editing.render_face``, default ``RenderConfig``), and the
result is re-detected by the MediaPipe landmarker in image mode. Per control: the change of every
blendshape score per unit strength on each still, their mean, and the shipped expected readout
(``Delta.blendshapes``) beside it. This is how the controls' ``blendshapes`` were measured (see
``synthesis.controls._PROVENANCE``); the per-clip re-tracked figures are ``bench/quality.py``'s.

    python bench/control_readouts.py [--controls gaze_y,blink_left] [--strength 1.0] [--min 0.02]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compositing.crop import crop_for_landmarks  # noqa: E402
from plugin.demo import astronaut_image  # noqa: E402
from plugin.editing import RenderConfig, render_face  # noqa: E402
from plugin.video import VideoReader  # noqa: E402
from synthesis.codespace import invert_single, render_code  # noqa: E402
from synthesis.controls import named_controls  # noqa: E402
from synthesis.deltas import apply_deltas  # noqa: E402
from tracking.landmarker import Landmarker, LandmarkerConfig  # noqa: E402
from tracking.mediapipe_results import BLENDSHAPE_NAMES  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"


def stills() -> dict[str, np.ndarray]:
    with VideoReader(FIXTURES / "liveportrait_d0.mp4") as reader:
        lp = next(iter(reader)).image
    return {"astronaut": astronaut_image(), "liveportrait_f0": lp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controls", default="", help="comma-separated names (default: every expression control)")
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--min", type=float, default=0.02, help="report scores whose mean change is at least this")
    args = ap.parse_args()
    controls = {n: d for n, d in named_controls().items() if d.kind == "expression"}
    if args.controls:
        controls = {n: controls[n] for n in args.controls.split(",")}
    config = RenderConfig(device="cpu")
    out: dict[str, object] = {"bench": "control_readouts", "strength": args.strength, "controls": {}}
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        faces = {}
        for name, image in stills().items():
            (obs,) = lm.detect_image(image)
            faces[name] = (image, obs.landmarks.astype(np.float64), obs.blendshapes)
        for cname, delta in controls.items():
            per_still = {}
            for name, (image, before, bs0) in faces.items():
                identity, code = invert_single(before, bs0)
                after = render_code(identity, apply_deltas(code, identity, [(delta, args.strength)]))
                crop = crop_for_landmarks(np.concatenate([before, after])[:, :2], image.shape[:2], out_size=256)
                edited, _ = render_face(image, before, after, crop, config)
                found = lm.detect_image(edited)
                if len(found) != 1:
                    per_still[name] = None
                    continue
                per_still[name] = (np.asarray(found[0].blendshapes) - np.asarray(bs0)) / args.strength
            got = [v for v in per_still.values() if v is not None]
            mean = np.mean(got, axis=0) if got else np.zeros(len(BLENDSHAPE_NAMES))
            shipped = np.asarray(delta.blendshapes)
            names = [BLENDSHAPE_NAMES[i] for i in np.flatnonzero((np.abs(mean) >= args.min) | (shipped != 0))]
            out["controls"][cname] = {  # type: ignore[index]
                n: {"mean": round(float(mean[BLENDSHAPE_NAMES.index(n)]), 3),
                    "shipped": round(float(shipped[BLENDSHAPE_NAMES.index(n)]), 3),
                    **{k: (None if v is None else round(float(v[BLENDSHAPE_NAMES.index(n)]), 3))
                       for k, v in per_still.items()}}
                for n in names
            }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
