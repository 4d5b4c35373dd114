"""The render-pass edit stage: planned landmark edits become pixels, frame by frame.

Orchestration only. For each face edited in a frame: take the track's smoothed crop
(``compositing.croptrack``), express the planned before/after landmarks in crop pixels, build the
backward warp field (``synthesis.warpfield``), apply it with Kornia, mask it with the union of the
face before and after the edit weighted by how far each pixel moves, and paste it back
(``compositing``). Frames and faces without an edit pass through untouched: their pixels are not
even read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray

from compositing.blend import BlendConfig
from compositing.crop import FaceCrop, extract
from compositing.croptrack import CropTrackConfig, track_crops
from compositing.mask import face_region_mask, motion_weight
from compositing.warp import apply_field, paste_back
from synthesis.plan import FacePlan
from synthesis.warpfield import WarpConfig, build_field
from tracking.frame import Frame
from tracking.observation import NUM_MESH_LANDMARKS

#: Iris points (after the 468 mesh points) join the warp only when an edit moves them relative to
#: their eye (gaze); otherwise they would pin the eye's texture open during a blink.
IRIS_RELATIVE_MOTION_PX = 0.3
_LEFT_IRIS = slice(468, 473)
_RIGHT_IRIS = slice(473, 478)


@dataclass(frozen=True)
class RenderConfig:
    """Everything that turns planned landmark edits into pixels."""

    warp: WarpConfig = field(default_factory=WarpConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    crop: CropTrackConfig = field(default_factory=CropTrackConfig)


def warp_points(before: NDArray[np.floating], after: NDArray[np.floating]) -> NDArray[np.intp]:
    """Indices of the landmarks that steer the warp: the mesh, plus irises that an edit moves
    relative to their eye."""
    keep = list(range(NUM_MESH_LANDMARKS))
    for iris, eye in ((_LEFT_IRIS, [362, 263, 386, 374]), (_RIGHT_IRIS, [33, 133, 159, 145])):
        d_iris = (after[iris, :2] - before[iris, :2]).mean(axis=0)
        d_eye = (after[eye, :2] - before[eye, :2]).mean(axis=0)
        if np.linalg.norm(d_iris - d_eye) > IRIS_RELATIVE_MOTION_PX:
            keep.extend(range(iris.start, iris.stop))
    return np.asarray(keep, dtype=np.intp)


def _to_crop(points: NDArray[np.floating], crop: FaceCrop) -> NDArray[np.float64]:
    p = np.asarray(points, dtype=np.float64)[:, :2]
    m = crop.crop_trans_frame
    return p @ m[:2, :2].T + m[:2, 2]


@dataclass
class FaceRenderInfo:
    """What happened to one face in one frame (for the run summary and QC)."""

    track_id: int
    frame_index: int
    min_jacobian: float
    repairs: int
    max_displacement_px: float


def render_face(
    image: NDArray[np.uint8],
    before: NDArray[np.floating],
    after: NDArray[np.floating],
    crop: FaceCrop,
    config: RenderConfig,
) -> tuple[NDArray[np.uint8], tuple[float, int, float]]:
    """Warp one face of ``image`` from ``before`` to ``after`` landmarks inside ``crop``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame; not modified.
        before, after: ``(478, 3)`` frame pixels.
        crop: the face's crop in this frame.
        config: warp, blend and crop settings.

    Returns:
        The new frame (the same object when nothing moves) and (min Jacobian, fold repairs,
        largest displacement in crop pixels).
    """
    idx = warp_points(before, after)
    src = _to_crop(before[idx], crop)
    dst = _to_crop(after[idx], crop)
    fld = build_field(src, dst, crop.size, config.warp)
    if fld.is_identity:
        return image, (1.0, 0, 0.0)
    with torch.inference_mode():
        face = extract(image, crop)
        edited = apply_field(face, fld.sample_xy)
        bc = config.blend
        mask = face_region_mask(_to_crop(before, crop), _to_crop(after, crop), crop.size,
                                dilate=bc.dilate, feather=bc.feather, floor=bc.floor)
        mask = mask * motion_weight(fld.sample_xy, bc.motion_px)
        out = paste_back(image, edited, crop, mask, bc)
    return out, (float(fld.min_jacobian), int(fld.repairs), float(fld.max_displacement))


class EditStage:
    """Render stage applying :class:`FacePlan` edits (latency 0; stateless per frame).

    Args:
        plans: one plan per edited face.
        frame_size: ``(height, width)`` of the clip's frames.
        config: render settings.
    """

    latency = 0

    def __init__(self, plans: Sequence[FacePlan], frame_size: tuple[int, int], config: RenderConfig | None = None):
        self.config = config or RenderConfig()
        self.info: list[FaceRenderInfo] = []
        self._by_frame: dict[int, list[tuple[FacePlan, int, FaceCrop]]] = {}
        for plan in plans:
            if plan.frame_indices.size == 0:
                continue
            both = np.concatenate([plan.before, plan.after], axis=1)
            crops = track_crops(both, plan.times, frame_size, self.config.crop, plan.segments)
            for row, (fi, crop) in enumerate(zip(plan.frame_indices, crops, strict=True)):
                self._by_frame.setdefault(int(fi), []).append((plan, row, crop))

    @property
    def edited_frames(self) -> list[int]:
        return sorted(self._by_frame)

    def push(self, frame: Frame) -> list[Frame]:
        jobs = self._by_frame.get(frame.index)
        if not jobs:
            return [frame]
        image = frame.image
        for plan, row, crop in jobs:
            image, (jac, repairs, disp) = render_face(image, plan.before[row], plan.after[row], crop, self.config)
            self.info.append(FaceRenderInfo(plan.track_id, frame.index, jac, repairs, disp))
        if image is frame.image:
            return [frame]
        return [Frame(frame.index, frame.pts, frame.time_base, image)]

    def flush(self) -> list[Frame]:
        return []

    def reset(self) -> None:
        pass
