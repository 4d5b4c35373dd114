"""Edit quality: what the edit engine achieves, re-read by the real landmarker (prints one JSON).

Every edit is rendered with ``run_edit`` to ffv1 (lossless; ``.mp4`` keeps pts exact) and the
output is re-tracked with ``run_analysis(use_cache=False)``. Figures compare the output's RAW
(unsmoothed) track with the input's raw track on the same frames:

- pose: achieved minus requested yaw/pitch/roll, read three ways: ``matrix`` (MediaPipe's facial
  transformation matrix, ``raw_transforms`` through ``euler_from_matrix``), ``procrustes`` (``invert_track`` on the raw 3-D
  landmarks of input and output; the relative rotation ``R_out R_in^T`` decomposed with
  ``euler_from_matrix``) and ``image`` (:func:`image_rotation`: the re-detected landmarks' image
  positions alone, x and y, fitted with the input frame's own 3-D face shape). The first two
  lean on the landmarker's depth channel, which a 2-D warp barely moves: on LivePortrait yaw
  +10 the re-detected points land on the planned image positions with a gain of 1.00-1.02 (nose,
  eyes, lips, oval), yet ``matrix`` reads 7.5 degrees and ``procrustes`` 9.1 (``image`` 9.5).
  No reader is the truth: on pitch the three disagree the other way (astronaut pitch +10:
  ``matrix`` 10.8, ``procrustes`` 9.7, ``image`` 6.1; a weak-perspective fit of x-y alone is
  weakly determined in pitch), so all three are reported. A fourth figure, ``geometry``, needs no
  landmarker: the ``image`` reader applied to where the rendered field itself puts the landmarks
  (:func:`field_landmarks`), so a shortfall of the render and one of the re-reading are told apart;
- blendshapes: achieved change of each control's intended score vs ``Delta.blendshapes x strength``,
  and vs what the score's range leaves of that from the input's value (``fraction_of_reachable``:
  a face that already smiles at 0.9 can show at most 0.1 more);
- identity: ``identity_change`` outside the delta's region (fraction of inter-ocular distance),
  with the same figure between neighbouring unedited input frames as the noise floor; for pose
  edits also ``identity_image`` (:func:`image_identity`: the input frame's 3-D shape fitted to the
  output's image positions alone, since the landmarker's depth barely follows a 2-D warp) and
  ``identity_geometry`` (the same fit to where the field puts the landmarks, beside the fit to the
  positions before the edit); for expression edits ``geometry_rms_iod`` (:func:`geometry_outside`:
  how far the render itself moves the points outside the delta's region);
- real blinks (LivePortrait): the blendshape change MediaPipe reads on the clip's own shut eyes,
  the yardstick for "the intended score moves most" (:func:`real_blinks`);
- pixels: differing pixels in frames outside the plan (must be 0) and, in edited frames, outside
  the face box grown by half the face size;
- temporal: landmark jitter (second difference after a 2-D similarity to the first frame, / IOD)
  of the re-tracked output vs the input. This figure is mostly the landmarker's own noise (the
  smoothed track's is ~10x lower) and that noise depends on the face's content: an IDEAL edit
  (the demo's still edited once, then animated by the demo's exact homographies: no flicker by
  construction) reads 5-25% above the input too (bench/jitter_probe.py). So ``field`` adds the
  renderer's own temporal smoothness, landmarker-free: the second difference of the warp field's
  displacement at probes between landmarks vs that of the planned displacement there;
- speed: render-pass fps with one face smiling on every frame vs pass-through (x264 veryfast).

Stills (before | after at a full-strength frame) of every control go to bench/results/.

The edit engine's warp is measured alone unless ``--texture`` (texture from other frames is
``bench/texture_quality.py``'s subject; with it, a blink on a clip that has no closed-eye frame
borrows lids made from the face's own open eye, as ``deltaface edit`` does by default, or is
clamped where none can be made).

    python bench/quality.py [--quick] [--skip-speed] [--texture]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import Delaunay

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from passthrough import make_clip  # noqa: E402  (bench/passthrough.py)

from plugin.analyze import run_analysis  # noqa: E402
from plugin.demo import MotionSettings, write_demo_clip  # noqa: E402
from plugin.edit_job import EditJob, run_edit  # noqa: E402
from plugin.editing import EditStage, RenderConfig, face_field  # noqa: E402
from plugin.learn_job import learn_from_images  # noqa: E402
from plugin.pipeline import RenderJob, run_render  # noqa: E402
from plugin.texture_stage import TextureConfig  # noqa: E402
from plugin.video import VideoReader  # noqa: E402
from plugin.writer import OutputConfig, VideoWriter  # noqa: E402
from synthesis.codespace import canonical_shape, invert_track  # noqa: E402
from synthesis.controls import named_controls  # noqa: E402
from synthesis.deltas import OUTSIDE_REGION, identity_change  # noqa: E402
from synthesis.plan import PlanConfig  # noqa: E402
from synthesis.regions import inter_ocular, rigid_weights  # noqa: E402
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve  # noqa: E402
from synthesis.warpfield import field_at  # noqa: E402
from tracking.mediapipe_results import BLENDSHAPE_NAMES  # noqa: E402
from tracking.pose import euler_from_matrix, similarity_fit  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
RESULTS = Path(__file__).resolve().parent / "results"
FULL = (10, 29)  # frames at full strength
RAMP = 4
STILL_FRAME = 20
INTENDED = {
    "blink_left": ["eyeBlinkLeft"], "blink_right": ["eyeBlinkRight"], "squint": ["eyeSquintLeft", "eyeSquintRight"],
    "smile": ["mouthSmileLeft", "mouthSmileRight"], "mouth_stretch": ["mouthStretchLeft", "mouthStretchRight"],
    "jaw_open": ["jawOpen"], "brow_raise": ["browInnerUp"], "gaze_x": ["eyeLookOutLeft", "eyeLookInRight"],
    "gaze_y": ["eyeLookUpLeft", "eyeLookUpRight"],
}
POSE_AXES = {"head_yaw": 0, "head_pitch": 1, "head_roll": 2}
BS = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


class Bench:
    """One clip: its input analysis, and edits rendered and re-tracked."""

    def __init__(self, name: str, clip: Path, work: Path, render: RenderConfig, texture: bool = False) -> None:
        self.name, self.clip, self.work, self.render = name, clip, work, render
        self.texture = TextureConfig() if texture else None
        self.cache = work / "cache"
        self.analysis = run_analysis(clip, cache_dir=self.cache).analysis
        self.track = max(self.analysis.tracks, key=lambda t: len(t.frame_indices))
        with VideoReader(clip) as reader:
            self.frames = [f.image for f in reader]
        self.count = 0

    @functools.cached_property
    def code(self) -> Any:
        """The input track's code (``invert_track`` of its raw landmarks), which every pose and
        form reader fits against."""
        return invert_track(self.track.raw_landmarks, self.track.raw_blendshapes)

    def edit(self, entries: list[tuple[str, float]], plan: PlanConfig | None = None, frames: tuple[int, int] = FULL,
             ramp: int = RAMP) -> dict[str, Any]:
        self.count += 1
        out = self.work / f"{self.name}_{self.count}.mp4"
        schedule = EditSchedule(tuple(EditEntry(self.track.track_id, n, StrengthCurve.over_range(s, frames[0], frames[1], ramp))
                                      for n, s in entries))
        job = EditJob(RenderJob(self.clip, out, OutputConfig(codec="ffv1", overwrite=True)), schedule,
                      plan=plan or PlanConfig(), render_config=self.render, cache_dir=self.cache,
                      texture=self.texture)
        summary = run_edit(job)
        retrack = run_analysis(out, cache_dir=self.work / "cache_out", use_cache=False).analysis
        tracks = [t for t in retrack.tracks if len(t.frame_indices)]
        out_track = max(tracks, key=lambda t: len(t.frame_indices))
        with VideoReader(out) as reader:
            images = [f.image for f in reader]
        out.unlink()
        return {"summary": summary, "track": out_track, "images": images}

    def rows(self, track: Any, frames: range) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the input track and of ``track`` for ``frames`` present in both."""
        fi = [f for f in frames if f in set(track.frame_indices.tolist()) and f in set(self.track.frame_indices.tolist())]
        a = np.searchsorted(self.track.frame_indices, fi)
        b = np.searchsorted(track.frame_indices, fi)
        return a, b


def iod(lm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lm[..., 33, :2] - lm[..., 263, :2], axis=-1)


def pose_achieved(bench: Bench, result: dict[str, Any]) -> dict[str, list[float]]:
    t = result["track"]
    a, b = bench.rows(t, range(FULL[0], FULL[1] + 1))
    # euler_from_matrix of the raw transforms, not Track.raw_angles: tracking/smoothing.py's
    # angles_from_transforms reads roll with the opposite sign (counter-clockwise positive).
    ang_in = np.array([euler_from_matrix(m) for m in bench.track.raw_transforms[a]])
    ang_out = np.array([euler_from_matrix(m) for m in t.raw_transforms[b]])
    matrix = (ang_out - ang_in).mean(axis=0)
    code_in = bench.code
    code_out = invert_track(t.raw_landmarks, t.raw_blendshapes)
    rel = np.array([euler_from_matrix(code_out.rotations[j] @ code_in.rotations[i].T) for i, j in zip(a, b)])
    rigid = rigid_weights()[:468]
    img = []
    for i, j in zip(a, b):
        shape = canonical_shape(code_in.identity, code_in.expressions[i])[:468]
        r_in = image_rotation(bench.track.raw_landmarks[i, :468, :2].astype(np.float64), shape, rigid)
        r_out = image_rotation(t.raw_landmarks[j, :468, :2].astype(np.float64), shape, rigid)
        img.append(euler_from_matrix(r_out @ r_in.T))
    return {"matrix": [round(float(v), 2) for v in matrix], "procrustes": [round(float(v), 2) for v in rel.mean(0)],
            "image": [round(float(v), 2) for v in np.mean(img, axis=0)]}


def image_identity(bench: Bench, result: dict[str, Any]) -> dict[str, float]:
    """Identity read from image positions alone (no landmark depth), for pose edits.

    Each full-strength frame's own 3-D face shape (the input's inversion) is fitted to the
    re-detected output's mesh points in x and y (:func:`shape_residual`); what no rotation,
    scale and shift of that shape explains is a change of the face's form. A pose edit should
    leave the form alone, so ``rms_iod`` should be near ``floor_rms_iod``, the same shape fitted
    to the next input frame (the landmarker's noise and the face's own motion between frames).
    The depth-based identity figure (``identity_rms_iod``) reads the landmarker's depth, which a
    2-D warp barely moves: a turned face then reads as another shape.
    """
    t = result["track"]
    a, b = bench.rows(t, range(FULL[0], FULL[1] + 1))
    code_in = bench.code
    raw = bench.track.raw_landmarks
    out, floor = [], []
    for i, j in zip(a, b):
        shape = canonical_shape(code_in.identity, code_in.expressions[i])[:468]
        out.append(shape_residual(t.raw_landmarks[j, :468, :2].astype(np.float64), shape))
        if i + 1 < len(raw):
            floor.append(shape_residual(raw[i + 1, :468, :2].astype(np.float64), shape))
    return {"rms_iod": round(float(np.mean(out)), 5), "floor_rms_iod": round(float(np.mean(floor)), 5)}


def field_landmarks(plan: Any, stage: EditStage, row: int, iterations: int = 8) -> np.ndarray:
    """``(468, 2)`` frame pixels where the rendered warp puts each mesh landmark of ``row``: the
    output position ``p`` whose backward sample is the landmark's input position (``field(p) =
    before``), by fixed-point iteration from the planned position (the field is exact at the points
    that steer it; points left out of the warp, such as folding silhouette points, land where their
    neighbours take them). No landmarker is involved: this is the edit's own image geometry."""
    crop = stage.face_crop(plan.track_id, int(plan.frame_indices[row]))
    fld = face_field(plan.before[row], plan.after[row], crop, stage.config)
    m = crop.crop_trans_frame
    src = plan.before[row, :468, :2].astype(np.float64) @ m[:2, :2].T + m[:2, 2]
    p = plan.after[row, :468, :2].astype(np.float64) @ m[:2, :2].T + m[:2, 2]
    for _ in range(iterations):
        p = np.clip(p + (src - field_at(fld, p)), 0.0, crop.size - 1.0)
    f = crop.frame_trans_crop
    return p @ f[:2, :2].T + f[:2, 2]


def geometry(bench: Bench, result: dict[str, Any]) -> dict[str, Any]:
    """The pose and form the warp itself gives, read without the landmarker (:func:`field_landmarks`):
    the ``image`` reader and :func:`shape_residual` applied to where the field puts the landmarks,
    against the plan's ``before`` positions (the smoothed track). Separates what the render does
    from how the landmarker re-reads it."""
    plan = result["summary"].plans[0]
    stage = EditStage([plan], bench.frames[0].shape[:2], bench.render)
    code_in = bench.code
    rigid = rigid_weights()[:468]
    rows = np.flatnonzero((plan.frame_indices >= FULL[0]) & (plan.frame_indices <= FULL[1]))
    angles, form, floor = [], [], []
    for r in rows:
        i = int(np.searchsorted(bench.track.frame_indices, plan.frame_indices[r]))
        shape = canonical_shape(code_in.identity, code_in.expressions[i])[:468]
        before = plan.before[r, :468, :2].astype(np.float64)
        moved = field_landmarks(plan, stage, int(r))
        angles.append(euler_from_matrix(image_rotation(moved, shape, rigid) @ image_rotation(before, shape, rigid).T))
        form.append(shape_residual(moved, shape))
        floor.append(shape_residual(before, shape))
    return {"achieved": [round(float(v), 2) for v in np.mean(angles, axis=0)],
            "identity_rms_iod": round(float(np.mean(form)), 5), "identity_before_rms_iod": round(float(np.mean(floor)), 5)}


def geometry_outside(bench: Bench, result: dict[str, Any], region: np.ndarray | None) -> float:
    """How far the render moves the face outside an expression delta's region, without the
    landmarker: on the full-strength frames, where the field puts the mesh points
    (:func:`field_landmarks`) against where they were (the plan's ``before``), fitted by a 2-D
    similarity on the points outside the region (weight below ``OUTSIDE_REGION``, as
    ``identity_change``); the RMS distance there over the inter-ocular distance. The re-detected
    figure (``rms_iod``) also holds how the landmarker re-fits its whole mesh to a changed eye or
    mouth."""
    plan = result["summary"].plans[0]
    stage = EditStage([plan], bench.frames[0].shape[:2], bench.render)
    outside = np.ones(468, bool) if region is None else np.asarray(region)[:468] < OUTSIDE_REGION
    out = []
    for r in np.flatnonzero((plan.frame_indices >= FULL[0]) & (plan.frame_indices <= FULL[1])):
        before = plan.before[r, :468, :2].astype(np.float64)
        moved = field_landmarks(plan, stage, int(r))
        scale, rot, shift = similarity_fit(moved[outside], before[outside])
        dist = np.linalg.norm(scale * moved[outside] @ rot.T + shift - before[outside], axis=1)
        out.append(float(np.sqrt(np.mean(dist**2))) / float(iod(before)))
    return round(float(np.mean(out)), 5)


def shape_residual(points: np.ndarray, shape: np.ndarray) -> float:
    """RMS distance (in the fitted shape's inter-ocular distances) of ``(K, 2)`` image points
    from the best weak-perspective view (rotation, scale, shift) of the ``(K, 3)`` canonical
    ``shape``: least squares from :func:`image_rotation`'s start."""
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    flip = np.array([1.0, -1.0])  # camera y up -> image y down
    r0 = image_rotation(points, shape, np.ones(len(shape)))
    view = (shape @ r0.T)[:, :2] * flip
    c, x = view - view.mean(0), points - points.mean(0)
    s0 = float((c * x).sum() / (c * c).sum())
    t0 = points.mean(0) - s0 * view.mean(0)

    def resid(p: np.ndarray) -> np.ndarray:
        rot = Rotation.from_rotvec(p[:3]).as_matrix() @ r0
        return ((p[3] * (shape @ rot.T)[:, :2] * flip + p[4:6]) - points).ravel()

    fit = least_squares(resid, np.concatenate([np.zeros(3), [s0], t0]))
    d = np.linalg.norm(fit.fun.reshape(-1, 2), axis=1)
    iod_px = fit.x[3] * inter_ocular(shape)
    return float(np.sqrt(np.mean(d**2)) / iod_px)


def image_rotation(points: np.ndarray, shape: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Head rotation ``(3, 3)`` (camera space, y up) that best explains image points by a 3-D shape.

    Weak perspective: ``points ~ s * (FLIP R shape)[:, :2] + t`` in least squares over the rigid
    points (``weights``); the affine 2x3 fit is made orthonormal (SVD) and completed by a cross
    product. Only the image positions are used: no landmark depth.

    Args:
        points: ``(K, 2)`` image pixels (y down).
        shape: ``(K, 3)`` canonical shape (y up, z toward the viewer).
        weights: ``(K,)`` non-negative fit weights.
    """
    w = weights / weights.sum()
    c = shape - w @ shape
    x = points - w @ points
    sw = np.sqrt(w)[:, None]
    m = np.linalg.lstsq(c * sw, x * sw, rcond=None)[0].T  # (2, 3): x ~ m c
    m[1] *= -1.0  # image y down -> camera y up
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    r2 = u @ vt
    return np.vstack([r2, np.cross(r2[0], r2[1])])


def blendshape_change(bench: Bench, result: dict[str, Any]) -> np.ndarray:
    t = result["track"]
    a, b = bench.rows(t, range(FULL[0], FULL[1] + 1))
    return (t.raw_blendshapes[b] - bench.track.raw_blendshapes[a]).mean(axis=0)


def identity_outside(bench: Bench, result: dict[str, Any], region: np.ndarray | None) -> float:
    t = result["track"]
    a, b = bench.rows(t, range(FULL[0], FULL[1] + 1))
    reg = None if region is None or not np.any(region) else region
    return float(np.mean([identity_change(bench.track.raw_landmarks[i], t.raw_landmarks[j], reg).rms for i, j in zip(a, b)]))


def identity_floor(bench: Bench, region: np.ndarray | None = None) -> float:
    lm = bench.track.raw_landmarks
    reg = None if region is None or not np.any(region) else region
    return float(np.mean([identity_change(lm[i], lm[i + 1], reg).rms for i in range(FULL[0], FULL[1])]))


def pixels_outside(bench: Bench, result: dict[str, Any]) -> dict[str, int]:
    plan = result["summary"].plans[0]
    edited = set(plan.frame_indices.tolist())
    outside_frames = sum(int(np.any(o != i, axis=2).sum()) for k, (i, o) in enumerate(zip(bench.frames, result["images"]))
                         if k not in edited)
    outside_box = 0
    for row, k in enumerate(plan.frame_indices):
        pts = np.concatenate([plan.before[row, :, :2], plan.after[row, :, :2]])
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        pad = 0.5 * max(x1 - x0, y1 - y0)
        diff = np.any(bench.frames[k] != result["images"][k], axis=2)
        ys, xs = np.nonzero(diff)
        outside_box += int(np.sum((xs < x0 - pad) | (xs > x1 + pad) | (ys < y0 - pad) | (ys > y1 + pad)))
    return {"frames_outside_plan_differing_px": outside_frames, "edited_frames_outside_face_box_px": outside_box}


def jitter(lm: np.ndarray) -> float:
    """Mean |second difference| of landmarks over IOD after a 2-D similarity to the first frame."""
    ref = lm[0, :468, :2].astype(np.float64)
    aligned = []
    for x in lm[:, :468, :2].astype(np.float64):
        s, r, t = similarity_fit(x, ref)
        aligned.append(s * x @ r.T + t)
    al = np.stack(aligned)
    d2 = al[2:] - 2 * al[1:-1] + al[:-2]
    return float(np.linalg.norm(d2, axis=2).mean() / iod(ref))


def field_flicker(plan: Any, stage: EditStage, frames: tuple[int, int] = FULL) -> dict[str, float]:
    """The renderer's temporal smoothness without the landmarker, on ``frames`` (full strength).

    Probes: the midpoints of the edges of a Delaunay mesh of the first frame's 468 landmarks,
    placed on each frame's AFTER landmarks. At each, the field's backward displacement (what
    :func:`plugin.editing.face_field` gives, bilinear in the crop) and the planned one (the mean
    of its two landmarks' ``before - after``), both in frame pixels. Returns the mean norm of
    their second differences over time / IOD (``field`` and ``plan``; equal: the field between
    landmarks is as smooth in time as the plan) and the mean |field - plan| in frame pixels.
    """
    rows = np.flatnonzero((plan.frame_indices >= frames[0]) & (plan.frame_indices <= frames[1]))
    first = plan.before[rows[0], :468, :2].astype(np.float64)
    tri = Delaunay(first).simplices
    edges = np.unique(np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1), axis=0)
    got, want = [], []
    for r in rows:
        crop = stage.face_crop(plan.track_id, int(plan.frame_indices[r]))
        fld = face_field(plan.before[r], plan.after[r], crop, stage.config)
        m, f = crop.crop_trans_frame, crop.frame_trans_crop[:2, :2]
        b = plan.before[r, :468, :2].astype(np.float64) @ m[:2, :2].T + m[:2, 2]
        a = plan.after[r, :468, :2].astype(np.float64) @ m[:2, :2].T + m[:2, 2]
        pa, pb = 0.5 * (a[edges[:, 0]] + a[edges[:, 1]]), 0.5 * (b[edges[:, 0]] + b[edges[:, 1]])
        grid = torch.from_numpy(pa * (2.0 / (crop.size - 1)) - 1.0).float()[None, None]
        at = F.grid_sample(fld.displacement().permute(2, 0, 1)[None], grid, mode="bilinear", align_corners=True)
        got.append(at[0, :, 0].T.double().numpy() @ f.T)
        want.append((pb - pa) @ f.T)
    g, w = np.stack(got), np.stack(want)
    scale = float(iod(first))

    def d2(x: np.ndarray) -> float:
        return float(np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=2).mean() / scale)

    return {"field": round(d2(g), 6), "plan": round(d2(w), 6),
            "field_minus_plan_px": round(float(np.linalg.norm(g - w, axis=2).mean()), 4)}


def temporal(bench: Bench, result: dict[str, Any]) -> dict[str, Any]:
    t = result["track"]
    a, b = bench.rows(t, range(FULL[0], FULL[1] + 1))
    plan = result["summary"].plans[0]
    stage = EditStage([plan], bench.frames[0].shape[:2], bench.render)
    return {"input": round(jitter(bench.track.raw_landmarks[a]), 5), "output": round(jitter(t.raw_landmarks[b]), 5),
            "field_d2_iod": field_flicker(plan, stage)}


def face_crop(image: np.ndarray, lm: np.ndarray, size: int = 256) -> np.ndarray:
    (x0, y0), (x1, y1) = lm[:, :2].min(0), lm[:, :2].max(0)
    c, half = ((x0 + x1) / 2, (y0 + y1) / 2), 0.75 * max(x1 - x0, y1 - y0)
    m = np.array([[size / (2 * half), 0, size / 2 - c[0] * size / (2 * half)],
                  [0, size / (2 * half), size / 2 - c[1] * size / (2 * half)]])
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA)


def montage(tiles: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    """Rows of (label, before, after) face crops, 3 pairs per row; saved as PNG (RGB in)."""
    cells = []
    for label, before, after in tiles:
        pair = np.concatenate([before, after], axis=1).copy()
        cv2.putText(pair, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
        cells.append(pair)
    per_row = 3
    while len(cells) % per_row:
        cells.append(np.zeros_like(cells[0]))
    rows = [np.concatenate(cells[i:i + per_row], axis=1) for i in range(0, len(cells), per_row)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, axis=0)[:, :, ::-1])


def still(bench: Bench, result: dict[str, Any], label: str) -> tuple[str, np.ndarray, np.ndarray]:
    k = int(np.searchsorted(bench.track.frame_indices, STILL_FRAME))
    lm = bench.track.landmarks[k]
    return label, face_crop(bench.frames[STILL_FRAME], lm), face_crop(result["images"][STILL_FRAME], lm)


def fold_repairs(result: dict[str, Any]) -> int:
    return int(result["summary"].fold_repairs)


def run_clip(bench: Bench, quick: bool) -> dict[str, Any]:
    controls = named_controls()
    report: dict[str, Any] = {"frames": len(bench.frames), "full_strength_frames": list(FULL), "pose": {},
                              "blendshapes": {}, "identity": {}, "pixels": {}, "temporal": {}}
    tiles = []
    floor_all = identity_floor(bench)
    report["identity"]["noise_floor_neighbour_frames_all_points"] = round(floor_all, 5)
    angles = (5, 10) if quick else (5, 10, 15)
    for name, axis in POSE_AXES.items():
        rows = []
        for mag in angles:
            for sign in (1, -1):
                req = sign * mag
                log(f"[{bench.name}] {name} {req}")
                # the warp's accuracy as asked: no range clamp, no limit to the skin the frame shows
                res = bench.edit([(name, float(req))], PlanConfig(clamp_to_range=False, max_hidden_share=0.0))
                plan = res["summary"].plans[0]
                full = (plan.frame_indices >= FULL[0]) & (plan.frame_indices <= FULL[1])
                applied = float(np.mean(plan.strengths[name][full]))
                ach = pose_achieved(bench, res)
                geo = geometry(bench, res)
                rows.append({"requested": req, "applied": round(applied, 3),
                             "achieved_matrix": ach["matrix"][axis], "achieved_procrustes": ach["procrustes"][axis],
                             "achieved_image": ach["image"][axis],
                             "achieved_geometry": geo["achieved"][axis],
                             "other_axes_matrix": [v for i, v in enumerate(ach["matrix"]) if i != axis],
                             "fold_repairs": fold_repairs(res),
                             "identity_rms_iod": round(identity_outside(bench, res, None), 5),
                             "identity_image": image_identity(bench, res),
                             "identity_geometry": {k: geo[k] for k in ("identity_rms_iod", "identity_before_rms_iod")}})
                if req == 10:
                    tiles.append(still(bench, res, f"{name} {req}"))
                    report["pixels"][name] = pixels_outside(bench, res)
                    report["temporal"][name] = temporal(bench, res)
        report["pose"][name] = rows
    for name, intended in INTENDED.items():
        d = controls[name]
        s = d.max_strength
        log(f"[{bench.name}] {name} {s}")
        res = bench.edit([(name, s)])
        change = blendshape_change(bench, res)
        expected = d.blendshapes * s
        idx = [BS[n] for n in intended]
        top = int(np.argmax(np.abs(change)))
        ach, exp = float(change[idx].mean()), float(expected[idx].mean())
        # A score lives in [0, 1]: the change it can still show is what its input value leaves.
        rows_in, _ = bench.rows(res["track"], range(FULL[0], FULL[1] + 1))
        start = float(bench.track.raw_blendshapes[rows_in][:, idx].mean())
        room = min(abs(exp), 1.0 - start if exp > 0 else start)
        report["blendshapes"][name] = {
            "strength": s, "intended": intended, "expected": round(exp, 3), "achieved": round(ach, 3),
            "fraction": round(ach / exp, 2) if abs(exp) > 1e-6 else None,
            "input_score": round(start, 3),
            "fraction_of_reachable": round(abs(ach) / room, 2) if room > 1e-6 and ach * exp > 0 else None,
            "largest_change": [BLENDSHAPE_NAMES[top], round(float(change[top]), 3)],
            "intended_moves_most": top in idx, "fold_repairs": fold_repairs(res),
            "readout": {BLENDSHAPE_NAMES[i]: [round(float(expected[i]), 3), round(float(change[i]), 3)]
                        for i in np.flatnonzero(expected)},
        }
        report["identity"][name] = {"rms_iod": round(identity_outside(bench, res, d.region), 5),
                                    "geometry_rms_iod": geometry_outside(bench, res, d.region),
                                    "floor_rms_iod": round(identity_floor(bench, d.region), 5)}
        report["pixels"][name] = pixels_outside(bench, res)
        report["temporal"][name] = temporal(bench, res)
        tiles.append(still(bench, res, f"{name} {s}"))
    montage(tiles, RESULTS / f"quality_{bench.name}.png")
    return report


def cut_clip(src: Path, dst: Path, frames: int) -> Path:
    with VideoReader(src) as reader:
        with VideoWriter(dst, reader, OutputConfig(codec="ffv1", overwrite=True), {}) as writer:
            for f in reader:
                if f.index >= frames:
                    break
                writer.write(f)
    return dst


def learned_blink(bench: Bench, work: Path) -> dict[str, Any]:
    """A blink learned from LivePortrait (frames 5 -> 67) applied to the astronaut."""
    src = FIXTURES / "liveportrait_d0.mp4"
    paths = []
    with VideoReader(src) as reader:
        for f in reader:
            if f.index in (5, 67):
                p = work / f"lp_{f.index}.png"
                cv2.imwrite(str(p), f.image[:, :, ::-1])
                paths.append(p)
    delta_path = work / "lp_blink.delta"
    delta, _ = learn_from_images([(paths[0], paths[1])], "lp_blink", delta_path, overwrite=True)
    res = bench.edit([(str(delta_path), 1.0)])
    change = blendshape_change(bench, res)
    top = int(np.argmax(np.abs(change)))
    montage([still(bench, res, "learned blink 1.0")], RESULTS / "quality_learned_blink.png")
    return {"identity_rms_iod": round(identity_outside(bench, res, delta.region), 5),
            "floor_rms_iod": round(identity_floor(bench, delta.region), 5),
            "geometry_rms_iod": geometry_outside(bench, res, delta.region),
            "eyeBlinkLeft": round(float(change[BS["eyeBlinkLeft"]]), 3),
            "eyeBlinkRight": round(float(change[BS["eyeBlinkRight"]]), 3),
            "expected_eyeBlink": [round(float(delta.blendshapes[BS["eyeBlinkLeft"]]), 3),
                                  round(float(delta.blendshapes[BS["eyeBlinkRight"]]), 3)],
            "largest_change": [BLENDSHAPE_NAMES[top], round(float(change[top]), 3)],
            "fold_repairs": fold_repairs(res)}


def real_blinks(clip: Path, cache: Path, min_score: float = 0.5) -> dict[str, Any]:
    """What the landmarker reads on the clip's OWN blinks, the yardstick for "the intended score
    moves most": per eye, the mean blendshape change of the frames where its eyeBlink score is
    above ``min_score`` (eye shut) from the frames below the clip's median (eye open), the three
    largest changes, and whether eyeBlink is the largest. On real shut eyes MediaPipe also moves
    the gaze scores (the iris it can no longer see), as much as the lid's own."""
    track = max(run_analysis(clip, cache_dir=cache).analysis.tracks, key=lambda t: len(t.frame_indices))
    bs = track.raw_blendshapes
    out: dict[str, Any] = {}
    for side in ("Left", "Right"):
        score = bs[:, BS[f"eyeBlink{side}"]]
        shut, open_ = score > min_score, score < np.median(score)
        if not shut.any():
            continue
        change = bs[shut].mean(axis=0) - bs[open_].mean(axis=0)
        top = np.argsort(-np.abs(change))[:3]
        out[f"eyeBlink{side}"] = {"shut_frames": int(shut.sum()), "change": round(float(change[BS[f"eyeBlink{side}"]]), 3),
                                  "largest_changes": [[BLENDSHAPE_NAMES[k], round(float(change[k]), 3)] for k in top],
                                  "intended_moves_most": int(top[0]) == BS[f"eyeBlink{side}"]}
    return out


def make_speed_clip(path: Path, height: int, num_frames: int, fps: int = 25) -> None:
    """16:9 H.264 clip with the moving astronaut's head filling about 80% of the frame height."""
    make_clip(path, height, num_frames, fps, region=(slice(0, 300), slice(78, 378)))  # the head


def speed(work: Path, sizes: list[int], frames: int, render: RenderConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cfg = OutputConfig(codec="h264", preset="veryfast", overwrite=True)
    for size in sizes:
        clip = work / f"speed_{size}.mp4"
        make_speed_clip(clip, size, frames)
        log(f"[speed] {size}p")
        pt = run_render(RenderJob(clip, work / "pt.mp4", cfg))
        analysis = run_analysis(clip, cache_dir=work / "cache_speed").analysis
        face = max(analysis.tracks, key=lambda t: len(t.frame_indices)).track_id
        schedule = EditSchedule((EditEntry(face, "smile", StrengthCurve.constant(0.7)),))
        t0 = time.perf_counter()
        summary = run_edit(EditJob(RenderJob(clip, work / "ed.mp4", cfg), schedule, render_config=render,
                                   cache_dir=work / "cache_speed"))
        out[f"{size}p"] = {"frames": frames, "passthrough_fps": round(pt.fps, 2),
                           "edit_render_fps": round(summary.render.fps, 2),
                           "ratio": round(summary.render.fps / pt.fps, 3),
                           "edit_job_seconds_incl_plan": round(time.perf_counter() - t0, 2),
                           "fold_repairs": summary.fold_repairs}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer pose magnitudes, one clip size, fewer frames")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--clips", default="astronaut,liveportrait")
    ap.add_argument("--texture", action="store_true",
                    help="borrow region textures from other frames (the CLI's default); without it the "
                         "warp alone is measured, and a blink on a clip without closed-eye frames is not clamped")
    args = ap.parse_args()
    render = RenderConfig()
    report: dict[str, Any] = {"bench": "quality", "quick": args.quick, "cpus": os.cpu_count(),
                              "torch_threads": __import__("torch").get_num_threads(),
                              "readers": "pose: matrix = MediaPipe transformation matrix (euler_from_matrix of raw_transforms); procrustes = "
                                         "invert_track on raw 3-D landmarks, R_out R_in^T decomposed", "clips": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deltaface-quality-") as tmp:
        work = Path(tmp)
        benches = {}
        if "astronaut" in args.clips:
            clip = write_demo_clip(work / "astronaut.mp4", MotionSettings(num_frames=40))
            benches["astronaut"] = Bench("astronaut", clip, work, render, args.texture)
        if "liveportrait" in args.clips and (FIXTURES / "liveportrait_d0.mp4").exists():
            clip = cut_clip(FIXTURES / "liveportrait_d0.mp4", work / "liveportrait40.mp4", 40)
            benches["liveportrait"] = Bench("liveportrait", clip, work, render, args.texture)
        for name, bench in benches.items():
            report["clips"][name] = run_clip(bench, args.quick)
        if "liveportrait" in benches:  # the whole clip: its blink comes after the 40 frames edited
            report["clips"]["liveportrait"]["real_blinks"] = real_blinks(FIXTURES / "liveportrait_d0.mp4", work / "cache")
        if "astronaut" in benches and (FIXTURES / "liveportrait_d0.mp4").exists():
            log("[learned blink]")
            report["learned_blink_on_astronaut"] = learned_blink(benches["astronaut"], work)
        if not args.skip_speed:
            report["speed"] = speed(work, [720] if args.quick else [720, 1080], 24 if args.quick else 48, render)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
