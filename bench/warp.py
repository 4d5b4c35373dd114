"""Rendering an edit by warping: timings of each step, and what the edit achieved (prints JSON).

A 1920x1080 frame holds the face region of the public-domain astronaut portrait scaled to 1080
pixels high on a textured background. MediaPipe (the packaged bundle, IMAGE mode) finds the 478 landmarks; the edit
moves the mouth corners outward by 6 frame pixels and brings the upper lid of the face's left eye
70% of the way down to its lower lid. Each step of the chain is timed with one torch thread
(median of ``--repeat`` runs): crop extraction, field build per method, apply, mask, paste-back
per blend method. Each field method's result is then re-read by MediaPipe, which reports how far
the mouth corners and the eyelid actually moved (re-detection reads a blink only partly, so
compare methods with each other, not with the request). A second edit moves every point (a
10-pixel turn) for the worst-case field time, the error at the points and the field's roughness
(99th percentile of the displacement's discrete Laplacian) outside and inside the face.

    python bench/warp.py [--repeat 20] [--size 512] [--frame 1080|astronaut] [--save DIR]

``--save DIR`` writes before/after PNGs of the face region for each method, for a visual check.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compositing.blend import BlendConfig, blend  # noqa: E402
from compositing.crop import crop_for_landmarks, extract  # noqa: E402
from compositing.mask import FACE_OVAL, face_region_mask, motion_weight  # noqa: E402
from compositing.warp import apply_field, paste_back, support_box  # noqa: E402
from synthesis.warpfield import WarpConfig, build_field, field_at  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "tracking" / "models" / "face_landmarker.task"
ASTRONAUT = ROOT / "plugin" / "data" / "astronaut.png"

LEFT_EYE_UPPER = (466, 388, 387, 386, 385, 384, 398)
LEFT_EYE_LOWER = (249, 390, 373, 374, 380, 381, 382)
MOUTH_SHIFT_PX = 6.0
LID_CLOSE = 0.7


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3), out


def make_frame(kind: str) -> np.ndarray:
    still = cv2.cvtColor(cv2.imread(str(ASTRONAUT)), cv2.COLOR_BGR2RGB)
    if kind == "astronaut":
        return np.ascontiguousarray(still)
    rng = np.random.default_rng(0)
    frame = cv2.resize(rng.integers(0, 255, (135, 240, 3), dtype=np.uint8), (1920, 1080), interpolation=cv2.INTER_CUBIC)
    # The face region of the still (face about 90 px wide) scaled 3.4x: a close-up face of about
    # 300 px, big enough for MediaPipe's short-range detector on the whole frame.
    frame[:, 600:1680] = cv2.resize(still[0:320, 65:385], (1080, 1080), interpolation=cv2.INTER_CUBIC)
    return frame


def landmarks(frame: np.ndarray) -> np.ndarray | None:
    """``(478, 2)`` float64 frame pixels (pixel-centre origin), or None when no face is found."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(BUNDLE)), running_mode=vision.RunningMode.IMAGE, num_faces=1
    )
    with vision.FaceLandmarker.create_from_options(opts) as lm:
        res = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
    if not res.face_landmarks:
        return None
    h, w = frame.shape[:2]
    return np.array([[p.x * w - 0.5, p.y * h - 0.5] for p in res.face_landmarks[0]])


def tessellation() -> np.ndarray:
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

    edges = C.FACE_LANDMARKS_TESSELATION
    return np.array([[edges[i].start, edges[i + 1].start, edges[i + 2].start] for i in range(0, len(edges), 3)])


def edit(lm: np.ndarray) -> np.ndarray:
    """The requested edit in frame pixels: mouth corners out, left upper lid down.

    Each mouth corner (61, 291) moves ``MOUTH_SHIFT_PX`` outward along the mouth line and drags
    the landmarks around it with a Gaussian falloff (sigma a sixth of the mouth width): moving
    only the corner points would fold the mesh, whose neighbouring points are 1.5-3 px away. The
    upper-lid points move ``LID_CLOSE`` of the way to their lower-lid partners.
    """
    out = lm.copy()
    axis = lm[291] - lm[61]
    width = float(np.linalg.norm(axis))
    axis /= width
    sigma = width / 6.0
    for corner, sign in ((61, -1.0), (291, 1.0)):
        d2 = np.sum((lm[:468] - lm[corner]) ** 2, axis=1)
        weight = np.exp(-d2 / (2 * sigma**2))
        weight[weight < 1e-3] = 0.0  # exact zeros: the piecewise-affine pass skips still triangles
        out[:468] += (sign * MOUTH_SHIFT_PX * weight)[:, None] * axis
    up, lo = list(LEFT_EYE_UPPER), list(LEFT_EYE_LOWER)
    out[up] = lm[up] + LID_CLOSE * (lm[lo] - lm[up])
    return out


def turn(lm: np.ndarray, shift: float = 10.0) -> np.ndarray:
    """A yaw-like edit that moves every point: x shifted by up to ``shift`` px, most at mid-height."""
    c, r = lm.mean(axis=0), np.ptp(lm, axis=0).max() / 2
    out = lm.copy()
    out[:, 0] += shift * np.sqrt(np.clip(1 - ((lm[:, 1] - c[1]) / r) ** 2, 0, 1))
    return out


def roughness(field: Any, outside: np.ndarray) -> dict[str, float]:
    """99th percentile of |discrete Laplacian| of the displacement (px), outside / inside the face."""
    d = field.displacement().numpy()
    lap = np.linalg.norm(d[2:, 1:-1] + d[:-2, 1:-1] + d[1:-1, 2:] + d[1:-1, :-2] - 4 * d[1:-1, 1:-1], axis=-1)
    o = outside[1:-1, 1:-1]
    return {
        "outside_face_p99": round(float(np.percentile(lap[o], 99)), 4),
        "inside_p99": round(float(np.percentile(lap[~o], 99)), 4),
    }


def measures(lm: np.ndarray) -> dict[str, float]:
    up, lo = list(LEFT_EYE_UPPER), list(LEFT_EYE_LOWER)
    return {
        "mouth_width_px": float(np.linalg.norm(lm[291] - lm[61])),
        "left_eye_gap_px": float(np.mean(np.linalg.norm(lm[up] - lm[lo], axis=1))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frame", choices=("1080", "astronaut"), default="1080")
    ap.add_argument("--save", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    frame = make_frame(args.frame)
    lm = landmarks(frame)
    if lm is None:
        raise SystemExit("no face found in the benchmark frame")
    mesh_lm = lm[:468]  # iris points sit inside the eye opening and would pin it open
    dst_lm = edit(lm)[:468]
    hw = frame.shape[:2]
    crop = crop_for_landmarks(mesh_lm, hw, out_size=args.size)
    to_crop = crop.crop_trans_frame
    src = mesh_lm @ to_crop[:2, :2].T + to_crop[:2, 2]
    dst = dst_lm @ to_crop[:2, :2].T + to_crop[:2, 2]
    s = crop.size
    cfg = BlendConfig()
    report: dict[str, Any] = {
        "frame": f"{hw[1]}x{hw[0]}",
        "crop_size": s,
        "crop_scale_frame_px_per_crop_px": round(float(crop.params[2]), 4),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "ms": {},
        "fields": {},
    }
    ms = report["ms"]
    ms["extract"], image = timed(lambda: extract(frame, crop), args.repeat)
    tris = tessellation()
    methods = {
        "tps": (WarpConfig(method="tps"), None),
        "pa": (WarpConfig(method="pa"), None),
        "pa_mesh": (WarpConfig(method="pa"), tris),
        "hybrid": (WarpConfig(method="hybrid"), None),
    }
    fields = {}
    for name, (wcfg, t) in methods.items():
        ms[f"field_{name}"], fields[name] = timed(lambda: build_field(src, dst, s, wcfg, triangles=t), args.repeat)
    # Every point moving (a small turn): the largest area the field has to cover.
    turned = turn(src)
    oval = np.zeros((s, s), np.uint8)
    cv2.fillPoly(oval, [np.round(src[list(FACE_OVAL)]).astype(np.int32)], 1)
    outside = cv2.dilate(oval, np.ones((15, 15), np.uint8)) == 0
    report["turn_10px"] = {}
    for name, (wcfg, t) in methods.items():
        ms[f"field_{name}_turn"], f = timed(lambda: build_field(src, turned, s, wcfg, triangles=t), args.repeat)
        err = np.linalg.norm(field_at(f, turned) - src, axis=1)
        report["turn_10px"][name] = {
            "point_error_px_max": round(float(err.max()), 3),
            "min_jacobian": round(f.min_jacobian, 3),
            **roughness(f, outside),
        }
    field = fields["hybrid"]
    ms["apply"], edited = timed(lambda: apply_field(image, field.sample_xy), args.repeat)
    ms["mask"], face = timed(
        lambda: face_region_mask(src, dst, s, dilate=cfg.dilate, feather=cfg.feather, floor=cfg.floor), args.repeat
    )
    ms["motion_weight"], weight = timed(lambda: motion_weight(field.sample_xy, cfg.motion_px), args.repeat)
    mask = face * weight
    for method in ("lerp", "laplacian", "poisson"):
        bcfg = BlendConfig(method=method)
        few = max(3, args.repeat // 4)
        ms[f"paste_back_{method}"], _ = timed(lambda: paste_back(frame, edited, crop, mask, bcfg), few)
    box = support_box(crop, mask)
    report["paste_box"] = box
    if box is not None:
        x0, y0, x1, y1 = box
        region = frame[y0:y1, x0:x1]
        fg = torch.rand(1, 3, y1 - y0, x1 - x0)
        alpha = torch.rand(1, 1, y1 - y0, x1 - x0)
        for method in ("lerp", "laplacian", "poisson"):
            bcfg = BlendConfig(method=method)
            ms[f"blend_only_{method}"], _ = timed(lambda: blend(region, fg, alpha, bcfg), max(3, args.repeat // 4))

    before = measures(lm)
    requested = measures(edit(lm))
    report["requested"] = {k: round(requested[k] - before[k], 2) for k in before}
    for name, f in fields.items():
        out_img = apply_field(image, f.sample_xy)
        m = face * motion_weight(f.sample_xy, cfg.motion_px)
        result = paste_back(frame, out_img, crop, m, cfg)
        again = landmarks(result)
        entry: dict[str, Any] = {
            "min_jacobian": round(f.min_jacobian, 3),
            "max_displacement_px": round(f.max_displacement, 2),
            "repairs": f.repairs,
        }
        if again is not None:
            got = measures(again)
            entry["achieved"] = {k: round(got[k] - before[k], 2) for k in before}
        report["fields"][name] = entry
        if args.save is not None:
            args.save.mkdir(parents=True, exist_ok=True)
            x0, y0, x1, y1 = crop.frame_box()
            pair = np.concatenate([frame[y0:y1, x0:x1], result[y0:y1, x0:x1]], axis=1)
            cv2.imwrite(str(args.save / f"warp_{name}.png"), cv2.cvtColor(pair, cv2.COLOR_RGB2BGR))
            if name == "hybrid":
                cv2.imwrite(
                    str(args.save / "mask.png"), (m[0, 0].numpy() * 255).astype(np.uint8)
                )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
