"""The swap repair's closed loop, in the frames: render the planned frames, re-detect the face,
and add to the plan the part of its change the warp fell short of (``synthesis.restore_loop``
does the arithmetic), a few rounds; only on the points the warp can move in full there
(:func:`reachable_points`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from compositing.crop import FaceCrop
from compositing.support import picture_area
from plugin.analyze import ProgressCallback
from plugin.editing import EditStage, RenderConfig, field_support, render_face, to_crop
from plugin.texture_stage import TextureCompositor
from plugin.video import VideoReader
from synthesis.plan import FacePlan
from synthesis.regions import LEFT_BROW, LEFT_EYE, LIPS, RIGHT_BROW, RIGHT_EYE, inter_ocular
from synthesis.restore import RestoreConfig
from synthesis.restore_loop import loop_correction, smooth_correction
from tracking.aspect import SquarePixels
from tracking.landmarker import Landmarker, LandmarkerConfig

#: The loop takes the detected face nearest the planned one, if within this many inter-ocular
#: distances (mean over the mesh points); else the frame keeps the open-loop plan.
REFINE_MATCH_IOD = 0.5
#: The loop's figures (``shortfall_iod_*``) are read on the mesh points the plan moves at least
#: this far (inter-ocular distances): elsewhere only the detector's noise is measured.
REFINE_STAT_MIN_IOD = 0.01
#: The loop closes the shortfall only on points where the warp's support (the fades at the
#: picture's edge and below the jaw, ``plugin.editing.field_support``) is at least this, before
#: and after the change: elsewhere the warp cannot deliver it (:func:`reachable_points`).
REFINE_MIN_SUPPORT = 0.9
#: Point sets whose mean change the loop's ``feature_shortfall`` figures compare: brows, lids,
#: lips and irises, each side apart.
FEATURES = (LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, LIPS, tuple(range(468, 473)), tuple(range(473, 478)))


def _detect_near(lm: Landmarker, image: NDArray[np.uint8], near: NDArray[np.floating],
                 square: SquarePixels) -> NDArray[np.float64] | None:
    """The detected face (``(478, 3)`` pixels) closest to ``near``; None when none is within
    :data:`REFINE_MATCH_IOD` inter-ocular distances (mean over the mesh points). The landmarker
    reads the picture in square pixels, as the analysis did (``square``)."""
    ref = np.asarray(near, np.float64)
    best, dist = None, REFINE_MATCH_IOD * inter_ocular(ref)
    for face in square.detect_image(lm, image):
        d = float(np.linalg.norm(face.landmarks[:468, :2] - ref[:468, :2], axis=1).mean())
        if d < dist:
            best, dist = np.asarray(face.landmarks, np.float64), d
    return best


def reachable_points(before: NDArray[np.floating], after: NDArray[np.floating], crop: FaceCrop,
                     render_config: RenderConfig, picture: tuple[int, int, int, int] | None = None
                     ) -> NDArray[np.bool_]:
    """``(478,)`` bool: the points whose planned change the warp can show in full.

    The warp's displacement is weighted by :func:`plugin.editing.field_support` (it fades at the
    picture's edge and below the jaw line); a point where that weight, read at its place before
    and after the change, is under :data:`REFINE_MIN_SUPPORT`, or that lies outside the crop or
    the picture, is not reachable.

    Args:
        before, after: ``(478, 2|3)`` frame pixels.
        crop: the face's crop (``EditStage.face_crop``).
        render_config: as the render uses.
        picture: the frame's picture area ``(x0, y0, x1, y1)``, exclusive ends (None: the whole frame).
    """
    h, w = crop.frame_size
    x0, y0, x1, y1 = picture or (0, 0, w, h)
    ok = np.ones(len(before), bool)
    pts = []
    for frame_pts in (before, after):
        p = np.asarray(frame_pts, np.float64)[:, :2]
        ok &= (p[:, 0] >= x0) & (p[:, 0] <= x1 - 1) & (p[:, 1] >= y0) & (p[:, 1] <= y1 - 1)
        pts.append(to_crop(p, crop))
    support = field_support(pts[0], pts[1], crop, render_config, picture)
    weight = None if support is None else support.detach().cpu().numpy()
    for c in pts:
        ij = np.round(c).astype(np.int64)
        inside = (ij >= 0).all(axis=1) & (ij < crop.size).all(axis=1)
        ok &= inside
        if weight is not None:
            val = np.zeros(len(c))
            val[inside] = weight[ij[inside, 1], ij[inside, 0]]
            ok &= val >= REFINE_MIN_SUPPORT
    return ok


def refine_plan(swapped: Path, plan: FacePlan, config: RestoreConfig, render_config: RenderConfig,
                frame_size: tuple[int, int], texture: TextureCompositor | None = None,
                progress: ProgressCallback | None = None) -> tuple[FacePlan, dict[str, Any]]:
    """Close the loop on a restore plan: make the re-detected face show the planned change.

    Each planned frame of the swap is rendered with the plan, the face is detected in the
    rendered frame and in the input frame (IMAGE mode, the same detector both times, so that its
    biases cancel), and the change it shows is compared with the planned change
    (:func:`synthesis.restore_loop.loop_correction`); the shortfall is added and the frame rendered
    again, ``config.refine_rounds`` times. The corrections are then smoothed over time and faded
    with the restore weight (:func:`synthesis.restore_loop.smooth_correction`). Frames where no face is
    detected keep the open-loop plan. Only the points the warp can move in full
    (:func:`reachable_points`) are compared and corrected; a frame with none keeps the open-loop
    plan too.

    Args:
        swapped: the swapped clip (frames are decoded in order; only planned frames are used).
        plan: the restore plan of one face (``strengths["restore"]`` is its weight).
        config: ``refine_*`` and ``smooth_sigma_frames`` are used.
        render_config: as the final render uses.
        frame_size: ``(height, width)``.
        texture: the region-texture compositor the final render will call (rendered frames in the
            loop go through it too).
        progress: optional ``progress(done, total)`` after each planned frame (the loop renders
            three times and detects four times per frame: the slowest part of a restore).

    Returns:
        The plan with the correction added to ``after``, and figures for the summary:
        ``shortfall_iod_before`` / ``shortfall_iod_after`` (mean over planned frames and the mesh
        points the plan moves, :data:`REFINE_STAT_MIN_IOD`, of |planned - achieved change|, in
        inter-ocular distances, with the open-loop plan and after the last round),
        ``feature_shortfall_iod_before`` / ``_after`` (the same for the mean change of each of
        :data:`FEATURES`: what blendshapes read; reachable points only), ``frames_refined``,
        ``frames_partly_unreachable`` (refined frames where some of the points the plan moves
        were left out: cut by the picture's border, say).
    """
    stage = EditStage([plan], frame_size, render_config)
    rows = {int(f): k for k, f in enumerate(plan.frame_indices)}
    planned = (plan.after - plan.before).astype(np.float64)
    corr = np.zeros(plan.after.shape, np.float64)
    first, last, done = [], [], np.zeros(len(rows), bool)
    partial = 0
    work = plan.after.copy()
    live = dataclasses.replace(plan, after=work)  # the texture hook reads ``after`` of the frame's row
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm, \
            VideoReader(swapped) as reader:
        square = SquarePixels(reader.info.width, reader.info.sample_aspect_ratio)
        for frame in reader:
            k = rows.get(frame.index)
            if k is None:
                continue
            if progress is not None:
                progress(k, len(rows))
            crop = stage.face_crop(plan.track_id, frame.index)
            src = _detect_near(lm, frame.image, plan.before[k], square)
            if src is None or crop is None:
                continue
            iod = inter_ocular(plan.before[k])
            picture = picture_area(frame.image)
            valid = reachable_points(plan.before[k], plan.after[k], crop, render_config, picture)
            if not valid[:468].any():
                continue
            moving = np.linalg.norm(planned[k, :468, :2], axis=1) >= REFINE_STAT_MIN_IOD * iod
            partial += int((moving & ~valid[:468]).any())
            moving &= valid[:468]
            feats = [ix for ix in (np.asarray(f)[valid[list(f)]] for f in FEATURES) if ix.size]
            c = np.zeros((plan.after.shape[1], 3))
            for rnd in range(config.refine_rounds + 1):
                work[k] = plan.after[k] + c
                image, _ = render_face(frame.image, plan.before[k], work[k], crop, render_config, stage.device,
                                       picture=picture)
                if texture is not None:
                    image = texture(image, frame.index, live, k)
                out = _detect_near(lm, image, plan.after[k] + c, square)
                if out is None:
                    break
                short = (planned[k] - (out - src))[:, :2]
                miss = np.linalg.norm(short[:468], axis=1)
                gap = float(miss[moving].mean() if moving.any() else miss[valid[:468]].mean()) / iod
                feat = float(np.mean([np.linalg.norm(short[ix].mean(axis=0)) for ix in feats])) / iod if feats else 0.0
                if rnd == 0:
                    first.append((gap, feat))
                if rnd == config.refine_rounds:
                    last.append((gap, feat))
                    break
                c = loop_correction(planned[k], out - src, c, iod, config.refine_gain, config.refine_max_iod,
                                    config.refine_smooth_rounds, valid)
            corr[k], done[k] = c, True
    if progress is not None:
        progress(len(rows), len(rows))
    weights = plan.strengths.get("restore", np.ones(len(rows)))
    corr = smooth_correction(corr, plan.frame_indices, weights, config.smooth_sigma_frames)
    corr[~done] = 0.0
    refined = dataclasses.replace(plan, after=(plan.after + corr).astype(np.float32))
    stats: dict[str, Any] = {"frames_refined": int(done.sum()), "frames_partly_unreachable": partial}
    for key, vals in (("before", first), ("after", last)):
        stats[f"shortfall_iod_{key}"] = round(float(np.mean([v[0] for v in vals])), 4) if vals else None
        stats[f"feature_shortfall_iod_{key}"] = round(float(np.mean([v[1] for v in vals])), 4) if vals else None
    return refined, stats
