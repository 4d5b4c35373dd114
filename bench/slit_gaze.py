"""Gaze of the exemplar a blink's ramp frames borrow, and where the iris shows in their slit (one JSON).

On the ramp frames of a blink (the eye partly closed, a slit) the borrowed eye should show the
iris where the edited frame's own iris is. liveportrait_d0 looks to either side (gaze x from
-0.2 to +0.28 eye widths) and has one natural blink (frames 64-68, gaze near 0): blinks are put
where the ramps cross the gaze shifts. Per edit and eye, ``prepare_edit`` plans it with texture
and warp only, and only the edited frames are rendered (the edit stage is stateless per frame).
On the ramp frames (strength strictly between 0 and full, a borrowed exemplar at weight > 0):

- ``gaze_err_units``: |gaze x of the main exemplar minus the frame's target gaze x| in feature
  units (``REGIONS[eye].feature_scale[1]``, eye widths), and the same for gaze y;
- ``dark_x_err``: the iris position re-measured on the image: the darkness-weighted centroid
  (eye widths, along the corner line, from the eye's centre) of the pixels inside the lid
  opening of the edited geometry, texture output minus warp-only output (the warp keeps the
  frame's own iris, its lid moved): how far the borrowed slit moves the iris;
- ``sclera_err``: the same for the balance of bright (sclera) pixels, ``(right - left) / all``;
- ``iris_contrast``: mean luminance of the opening away from the frame's own iris place minus
  that at it (:func:`iris_contrast`): the warp keeps the iris there (about +60), a borrowed lash
  line shows none (about 0), white where the iris should be is negative; ``frames_white_at_iris``
  counts ramp frames below :data:`WHITE_FRAME`;
- ``dark_band``: the fraction of the lid opening of the edited geometry darker than the frame's
  own lash/iris threshold (:func:`dark_fraction`), texture output minus warp-only output: a
  closed exemplar's lash line laid on a wider opening stretches into a dark band across the eye
  (positive), a borrowed lid or sclera where the warp shows the iris reads negative;
  ``dark_band_worst`` lists the ramp frames with the largest, ``frames_dark_band`` counts those
  above :data:`BAND_FRAME`; ``slit_dark_band_max`` is the largest on slits (target closure below
  ``GAZE_FULL_CLOSURE``, the iris showing), where a lash line has no place (on a nearly closed
  target the opening is mostly lashes anyway);
- ``flicker``: mean absolute frame-to-frame change (0..255) in the eye's box over the edited frames.

4x zoom crops of the eye over each ramp (rows: input, warp, texture; tiles labelled with the
frame, its target closure, the exemplar and its gaze) go to ``--out`` (default /tmp/slitgaze).

    python bench/slit_gaze.py [--out DIR] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.edit_job import prepare_edit  # noqa: E402
from plugin.texture_stage import TextureConfig  # noqa: E402
from plugin.video import VideoReader  # noqa: E402
from synthesis import regions as rg  # noqa: E402
from synthesis.exemplars import GAZE_FULL_CLOSURE, raw_features, state  # noqa: E402
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve  # noqa: E402
from synthesis.texregions import REGIONS  # noqa: E402
from texture_quality import log  # noqa: E402  (bench/ is on sys.path as the script's folder)

CLIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "liveportrait_d0.mp4"
#: Full-strength ranges of the blinks: their ramps cross the clip's gaze shifts (frames 10-12,
#: 27-29, 40-43, 54-56) and its held sideways gazes.
RANGES = ((15, 24), (33, 38), (47, 51))
RAMP = 4
ZOOM = 4
#: Bright (sclera) pixels: luminance above this fraction of the way from the opening's 10th to
#: its 95th percentile.
BRIGHT_AT = 0.6
#: Half width (eye widths) of the band around the target's iris centre (:func:`iris_contrast`).
IRIS_HALF = 0.1
#: A ramp frame shows white where its iris should be when its :func:`iris_contrast` is below this.
WHITE_FRAME = -10.0
#: Dark (lash or iris) pixels: luminance below this fraction of the way from the 5th to the 95th
#: percentile of the input frame's own lid opening (its tracked geometry).
DARK_AT = 0.35
#: A ramp frame shows a dark band when its ``dark_band`` is above this.
BAND_FRAME = 0.15
#: How many of the worst ``dark_band`` frames are listed.
BAND_WORST = 4


def eye_frame(lm: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre, unit x axis (along the corner line) and width of an eye, as in ``raw_features``."""
    upper, _, _ = rg.EYES[side]
    a, b = lm[upper[0], :2].astype(float), lm[upper[-1], :2].astype(float)
    width = float(np.linalg.norm(b - a))
    return (a + b) / 2, (b - a) / max(width, 1e-6), width


def opening_measures(image: np.ndarray, lm: np.ndarray, side: str) -> tuple[float, float, int]:
    """Darkness-weighted centroid (eye widths) and sclera balance of the pixels inside the lid
    opening of ``lm``, and how many pixels that is."""
    upper, lower, _ = rg.EYES[side]
    poly = np.concatenate([lm[list(upper), :2], lm[list(lower)[::-1], :2]])
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, shift=4)
    ys, xs = np.nonzero(mask)
    if xs.size < 4:
        return float("nan"), float("nan"), int(xs.size)
    y = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[ys, xs].astype(float)
    centre, ux, width = eye_frame(lm, side)
    u = ((np.stack([xs, ys], -1) - centre) @ ux) / width
    lo, hi = np.percentile(y, 10), np.percentile(y, 95)
    dark = np.clip(hi - y, 0, None)
    dark_x = float((dark * u).sum() / max(dark.sum(), 1e-6))
    bright = y > lo + BRIGHT_AT * (hi - lo)
    balance = float((np.sum(bright & (u > 0)) - np.sum(bright & (u < 0))) / max(bright.sum(), 1))
    return dark_x, balance, int(xs.size)


def iris_contrast(image: np.ndarray, lm: np.ndarray, side: str, gaze_x: float) -> float:
    """Mean luminance (0..255) of the pixels inside the lid opening of ``lm`` farther than
    :data:`IRIS_HALF` eye widths from the iris centre ``gaze_x`` (eye widths along the corner
    line) minus that of those within it: positive where the iris is dark at the frame's own
    place, about 0 for a lash line that shows none, negative for white where it should be."""
    upper, lower, _ = rg.EYES[side]
    poly = np.concatenate([lm[list(upper), :2], lm[list(lower)[::-1], :2]])
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, shift=4)
    ys, xs = np.nonzero(mask)
    centre, ux, width = eye_frame(lm, side)
    u = ((np.stack([xs, ys], -1) - centre) @ ux) / width
    band = np.abs(u - gaze_x) < IRIS_HALF
    if band.all() or not band.any():
        return float("nan")
    y = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[ys, xs].astype(float)
    return float(y[~band].mean() - y[band].mean())


def _opening(image: np.ndarray, lm: np.ndarray, side: str) -> np.ndarray:
    """Luminance (0..255) of the pixels inside the lid opening of ``lm``."""
    upper, lower, _ = rg.EYES[side]
    poly = np.concatenate([lm[list(upper), :2], lm[list(lower)[::-1], :2]])
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, shift=4)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[mask > 0].astype(float)


def dark_threshold(image: np.ndarray, lm: np.ndarray, side: str) -> float:
    """The frame's own lash/iris luminance threshold: :data:`DARK_AT` of the way from the 5th to the
    95th percentile of its lid opening (``image`` the input frame, ``lm`` its tracked geometry)."""
    y = _opening(image, lm, side)
    if y.size < 4:
        return float("nan")
    lo, hi = np.percentile(y, 5), np.percentile(y, 95)
    return float(lo + DARK_AT * (hi - lo))


def dark_fraction(image: np.ndarray, lm: np.ndarray, side: str, threshold: float) -> float:
    """Fraction of the pixels inside the lid opening of ``lm`` darker than ``threshold``."""
    y = _opening(image, lm, side)
    return float(np.mean(y < threshold)) if y.size else float("nan")


def eye_box(lms: np.ndarray, side: str, pad: float = 0.35) -> tuple[int, int, int, int]:
    pts = lms[:, list(REGIONS[f"eye_{side}"].core), :2].reshape(-1, 2)
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    px, py = pad * (x1 - x0), pad * (y1 - y0)
    return int(x0 - px), int(y0 - py), int(np.ceil(x1 + px)), int(np.ceil(y1 + py))


def zoom(image: np.ndarray, box: tuple[int, int, int, int], label: str) -> np.ndarray:
    x0, y0, x1, y1 = box
    c = cv2.resize(image[y0:y1, x0:x1], None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST).copy()
    cv2.putText(c, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 0), 1, cv2.LINE_AA)
    return c


def run(side: str, work: Path, out_dir: Path, tag: str) -> dict[str, Any]:
    region = f"eye_{side}"
    control = f"blink_{side}"
    sched = EditSchedule(tuple(EditEntry(0, control, StrengthCurve.over_range(1.0, a, b, RAMP)) for a, b in RANGES))
    prep = {v: prepare_edit(CLIP, sched, texture=None if v == "warp" else TextureConfig(), cache_dir=work)
            for v in ("warp", "texture")}
    plan = prep["texture"].plans[0]
    track = next(t for t in prep["texture"].analysis.analysis.tracks if t.track_id == plan.track_id)
    job = next(j for j in prep["texture"].texture.jobs.get(plan.track_id, []) if j.region.name == region)
    ch = job.choice
    weight = ch.weight(TextureConfig().full_weight_need)
    gap = float(np.percentile(raw_features(track.landmarks, region)[:, 0], 90))
    after = state(raw_features(plan.after, region), region, gap)
    cand_rows = ch.candidates[:, 1]
    cand_feat = raw_features(track.landmarks, region)
    strength = sched.per_frame(0, plan.frame_indices)[control]
    frames = [int(f) for f in plan.frame_indices]
    images: dict[str, dict[int, np.ndarray]] = {"input": {}, "warp": {}, "texture": {}}
    with VideoReader(CLIP) as reader:
        for f in frames:
            fr = reader.frame_at(f)
            images["input"][f] = fr.image
            for v in ("warp", "texture"):
                images[v][f] = prep[v].stage.push(fr)[0].image
    for p in prep.values():
        p.close()
    scale = REGIONS[region].feature_scale
    rows_out, errs, derr, serr, white, bands = [], [], [], [], [], []
    for r, f in enumerate(frames):
        ramp = 0.0 < strength[r] < 1.0 - 1e-9
        if not ramp:
            continue
        row: dict[str, Any] = {"frame": f, "strength": round(float(strength[r]), 3),
                               "closure": round(float(after[r, 0]), 3), "gaze_x": round(float(after[r, 1]), 3),
                               "weight": round(float(weight[r]), 3)}
        if weight[r] > 0 and ch.first[r] >= 0:
            k = int(cand_rows[ch.first[r]])
            ex_f = int(track.frame_indices[k])
            ex_s = state(cand_feat[k:k + 1], region, gap)[0]
            row.update(exemplar=ex_f, exemplar_closure=round(float(ex_s[0]), 3), exemplar_gaze_x=round(float(ex_s[1]), 3),
                       gaze_err_units=[round(float(abs(ex_s[i] - after[r, i]) / scale[i]), 2) for i in (1, 2)])
            errs.append(abs(ex_s[1] - after[r, 1]) / scale[1])
        m = {v: opening_measures(images[v][f], plan.after[r], side) for v in ("warp", "texture")}
        row["dark_x"] = {v: round(m[v][0], 3) for v in m}
        row["sclera_balance"] = {v: round(m[v][1], 3) for v in m}
        row["opening_px"] = m["texture"][2]
        row["iris_contrast"] = {v: round(iris_contrast(images[v][f], plan.after[r], side, float(after[r, 1])), 3)
                                for v in ("warp", "texture")}
        thr = dark_threshold(images["input"][f], plan.before[r], side)
        row["dark_fraction"] = {v: round(dark_fraction(images[v][f], plan.after[r], side, thr), 3)
                                for v in ("warp", "texture")}
        row["dark_band"] = round(row["dark_fraction"]["texture"] - row["dark_fraction"]["warp"], 3)
        if weight[r] > 0:
            bands.append((row["dark_band"], f, bool(after[r, 0] < GAZE_FULL_CLOSURE)))
            derr.append(abs(m["texture"][0] - m["warp"][0]))
            serr.append(abs(m["texture"][1] - m["warp"][1]))
            white.append([row["iris_contrast"]["warp"], row["iris_contrast"]["texture"]])
        rows_out.append(row)
    box = eye_box(plan.after, side)
    x0, y0, x1, y1 = box
    edited = [f for f in frames if f >= 1]

    def flick(v: str) -> float:
        seq = [images[v][f][y0:y1, x0:x1].astype(float) for f in edited]
        return round(float(np.mean([np.abs(seq[i] - seq[i - 1]).mean() for i in range(1, len(seq))
                                    if edited[i] == edited[i - 1] + 1])), 3)

    for a, b in RANGES:
        for name, fs in (("in", range(a - RAMP + 1, a + 1)), ("out", range(b, b + RAMP))):
            lines = []
            for v in ("input", "warp", "texture"):
                tiles = []
                for f in fs:
                    r = frames.index(f)
                    lab = f"{v[:3]} {f} c{after[r, 0]:.2f} g{after[r, 1]:+.2f}"
                    if v == "texture" and weight[r] > 0 and ch.first[r] >= 0:
                        k = int(cand_rows[ch.first[r]])
                        es = state(cand_feat[k:k + 1], region, gap)[0]
                        lab = f"ex{int(track.frame_indices[k])} c{es[0]:.2f} g{es[1]:+.2f} w{weight[r]:.1f}"
                    tiles.append(zoom(images[v][f], box, lab))
                lines.append(np.concatenate(tiles, axis=1))
            out_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out_dir / f"{tag}_{control}_{a}-{b}_{name}.png"), np.concatenate(lines, axis=0)[:, :, ::-1])
    return {"ramp_rows": rows_out,
            "textured_ramp_frames": len(errs),
            "gaze_x_err_units_mean": round(float(np.mean(errs)), 3) if errs else None,
            "gaze_x_err_units_max": round(float(np.max(errs)), 3) if errs else None,
            "frames_gaze_x_err_over_1": int(np.sum(np.asarray(errs) > 1.0)),
            "dark_x_err_mean": round(float(np.mean(derr)), 4) if derr else None,
            "sclera_err_mean": round(float(np.mean(serr)), 4) if serr else None,
            "iris_contrast_mean": dict(zip(("warp", "texture"), np.round(np.mean(white, axis=0), 2).tolist())) if white else None,
            "iris_contrast_min": dict(zip(("warp", "texture"), np.round(np.min(white, axis=0), 2).tolist())) if white else None,
            "frames_white_at_iris": int(np.sum(np.asarray(white)[:, 1] < WHITE_FRAME)) if white else 0,
            "dark_band_mean": round(float(np.mean([b for b, _, _ in bands])), 3) if bands else None,
            "dark_band_worst": [[f, b] for b, f, _ in sorted(bands, reverse=True)[:BAND_WORST]],
            "frames_dark_band": int(sum(b > BAND_FRAME for b, _, _ in bands)),
            "slit_dark_band_max": max((b for b, _, slit in bands if slit), default=None),
            "flicker": {v: flick(v) for v in ("input", "warp", "texture")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/slitgaze"), help="folder for the 4x crops")
    ap.add_argument("--tag", default="run", help="prefix of the crops' file names")
    ap.add_argument("--cache-dir", type=Path, default=None, help="analysis cache (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.cache_dir or Path(tmp)
        report = {side: run(side, work, args.out, args.tag) for side in ("left", "right")}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
