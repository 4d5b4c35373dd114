"""The render-pass edit stage: planned landmark edits become pixels, frame by frame.

For each face edited in a frame: take the track's smoothed crop (``compositing.croptrack``),
express the planned before/after landmarks in crop pixels, choose the landmarks that steer the
warp (:func:`warp_points`: irises only for gaze, no point whose triangles would turn over), build
the backward warp field there (``synthesis.warpfield``), and mask it with the union of the face
before and after the edit weighted by how far each pixel moves (``compositing.mask``). The frame
is then resampled ONCE: each frame pixel under the mask goes to crop coordinates, through the
field, and back to the frame, where it is sampled with Kornia (bicubic by default; only the pixels
the mask lets through) and blended in (``compositing.warp.sample_frame_through_field``,
``compositing.blend``), on the GPU when torch sees one. Extracting a crop, warping it and pasting it back resamples three times
and halves the fine detail of the face (bench/quality.py measured the Laplacian energy of the
face at 0.5-0.6 of the original after a pose edit that way, 0.9-1.0 with one resampling).

Frames and faces without an edit pass through untouched: their pixels are not even read; pixels
outside the mask's support keep their exact bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray

from compositing.blend import BlendConfig, blend
from compositing.crop import FaceCrop
from compositing.croptrack import CropTrackConfig, track_crops
from compositing.fields import crop_box, field_image
from compositing.mask import face_oval, motion_weight, polygon_mask, polygon_size, snap
from compositing.occlusion import keep_covered, keep_in_front
from compositing.support import below_jaw_support, head_polygons, picture_area, picture_support
from compositing.warp import sample_frame_through_field, support_box, warp_blend_lerp
from synthesis.plan import FacePlan
from synthesis.regions import LEFT_EYE, LIPS, RIGHT_EYE, inter_ocular
from synthesis.piecewise import border_anchors, flipped_triangles, triangulate
from synthesis.piecewise import opening_mask as _opening_mask
from synthesis.reveal import hidden_points
from synthesis.warpfield import WarpConfig, WarpField, build_field
from tracking.analysis import Track
from tracking.errors import ConfigError
from tracking.frame import Frame
from tracking.observation import NUM_MESH_LANDMARKS
from tracking.pose import similarity_fit

#: Iris points (after the 468 mesh points) join the warp only when an edit moves them relative to
#: their eye (gaze); otherwise they would pin the eye's texture open during a blink.
IRIS_RELATIVE_MOTION_PX = 0.3
#: ... and only while the eye stays open: when an edit leaves less than this fraction of the lid
#: gap, the iris folds onto the lid line and, as a control point, would hold the eye open (the
#: fold guard scaled the lids back: a blink closed the gap 6.7 -> 4.5 px instead of -> 1.9).
IRIS_MIN_GAP_FRACTION = 0.6
#: A field folded on at most this fraction of the crop's pixels (and at most
#: :data:`FOLD_TOLERANCE_MIN_PX` pixels) is used as it is: a one-pixel reversal at the edge of a
#: thin triangle is invisible, while the fold guard would shrink the whole edit by a quarter.
FOLD_TOLERANCE_FRACTION = 1e-4
FOLD_TOLERANCE_MIN_PX = 4
#: Rounds of dropping the points of turned-over triangles (see :func:`fold_free_points`).
FOLD_DROP_ROUNDS = 6
#: MediaPipe's iris rings: 468-472 is the subject's RIGHT eye (image left, around 33/133), 473-477
#: the LEFT eye (around 362/263).
_RIGHT_IRIS = slice(468, 473)
_LEFT_IRIS = slice(473, 478)
#: Per eye (subject's left, right): iris, corners and lid midpoints (upper, lower).
_EYES = ((_LEFT_IRIS, [362, 263, 386, 374]), (_RIGHT_IRIS, [33, 133, 159, 145]))
#: ``RenderConfig.interpolation`` -> Kornia's sampling mode.
INTERPOLATIONS = {"linear": "bilinear", "cubic": "bicubic"}
#: ``RenderConfig.device`` values ("auto": CUDA when torch sees a device, else the CPU).
DEVICES = ("auto", "cpu", "cuda")
#: Points never dropped as folding: the eye and lip contours. A blink or a closing mouth turns
#: triangles across the opening over on purpose (the lids meet); dropping the lids would reopen
#: the eye, so these stay exact and the field's fold guard handles them.
KEEP_EXACT = np.asarray(sorted({*LEFT_EYE, *RIGHT_EYE, *LIPS}), dtype=np.intp)
#: Rigid face-oval motion (the largest displacement of the similarity that best maps the oval
#: before the edit onto the oval after it, as a fraction of the face size) at which the blend
#: mask covers the whole head and neck (``RenderConfig.head_grow``): a head turn moves the ears
#: and hair line with the face, while an expression edit bends the oval rather than moving it
#: and keeps the mask on the face.
HEAD_MOTION_FULL = 0.02
#: A face counts as in front of another when its 3-D inter-ocular distance in pixels (which does
#: not shrink with yaw) is at least this many times the other's: heads differ in size far less
#: than distance changes them (see :func:`faces_in_front`).
NEARER_RATIO = 1.15
#: The fade at the picture's edge is at least this many times the edit's largest landmark motion
#: wide, so that no pixel near the edge samples from beyond it (see :func:`field_support`).
EDGE_WIDTH_PER_MOTION = 2.0


@dataclass(frozen=True)
class RenderConfig:
    """Everything that turns planned landmark edits into pixels.

    Attributes:
        warp: how the warp field is built.
        blend: mask and blend.
        crop: the crops the field lives in.
        interpolation: ``"cubic"`` or ``"linear"``: how the frame is sampled (once).
        drop_folding_points: leave out of the warp the landmarks whose triangles would turn over
            (a pose edit moves the silhouette and the nostrils across their neighbours; the fold
            guard would otherwise shrink the whole edit around them). They then follow their
            neighbours instead of landing exactly.
        max_field_size: largest crop side (pixels) the field and mask are built at when the crop
            size is automatic. The frame is sampled at its own resolution through the field, so
            a coarser field costs no detail, only the sharpness of the lid line of a closed eye
            (a 1080p face otherwise builds 1024-pixel fields, several times slower). 256 instead
            of 512 took 40% off the edit stage's time on a 1080p close-up (bench/perf.py), and
            moved 258 pixels of a closed eye's lid line by more than 2 grey levels.
        device: where the frame is resampled through the field and blended: ``"auto"`` (CUDA
            when torch sees a device, else the CPU), ``"cpu"`` or ``"cuda"``. The field itself is
            built on the CPU (it is small: a crop of at most ``max_field_size`` pixels).
        neck_fade: below the jaw line the warp fades to nothing over this fraction of the face
            size (``compositing.support.below_jaw_support``), so the neck bends and the collar
            and shoulders stay (0: no fade; the field then reaches down to the crop's border).
        head_grow: when the face oval moves (a head turn), the blend mask also covers the head
            around it: the ovals grown by this fraction, and the neck band the field bends
            (``compositing.support.head_polygons``); full at :data:`HEAD_MOTION_FULL`.
        picture_taper: the warp fades to nothing at the edge of the picture (the frame's border,
            or a letterbox or pillarbox bar: ``compositing.support.picture_area``) over this
            fraction of the face size, or over twice the edit's largest motion if that is wider
            (:data:`EDGE_WIDTH_PER_MOTION`), so no pixel is pulled in from beyond it.
    """

    warp: WarpConfig = field(default_factory=WarpConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    crop: CropTrackConfig = field(default_factory=CropTrackConfig)
    interpolation: str = "cubic"
    drop_folding_points: bool = True
    max_field_size: int = 256
    device: str = "auto"
    neck_fade: float = 0.3
    head_grow: float = 0.25
    picture_taper: float = 0.04

    def __post_init__(self) -> None:
        for name in ("neck_fade", "head_grow", "picture_taper"):
            value = getattr(self, name)
            if not 0 <= value <= 2:
                raise ConfigError(f"RenderConfig.{name} must be in [0, 2], got {value}")
        if self.device not in DEVICES:
            raise ConfigError(f"RenderConfig.device must be one of {DEVICES}, got {self.device!r}")
        if self.max_field_size < 64:
            raise ConfigError(f"RenderConfig.max_field_size must be >= 64, got {self.max_field_size}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"RenderConfig.interpolation must be one of {sorted(INTERPOLATIONS)}, "
                              f"got {self.interpolation!r}")


def faces_in_front(own: NDArray[np.floating], others: Iterable[NDArray[np.floating]],
                   ratio: float = NEARER_RATIO) -> list[NDArray[np.floating]]:
    """The faces of ``others`` (``(478, 3)`` frame pixels each) nearer the camera than ``own``:
    those :data:`NEARER_RATIO` times its size or more. Faces of about one size are side by side,
    not behind one another, and none of them counts as in front."""
    size = inter_ocular(np.asarray(own, np.float64))
    return [o for o in others if inter_ocular(np.asarray(o, np.float64)) >= ratio * size]


def tracked_faces(tracks: Iterable[Track]) -> Callable[[int], list[tuple[int, NDArray[np.float32]]]]:
    """For :class:`EditStage`'s ``faces``: every face the tracks hold in a frame, as
    ``(track id, (478, 3) landmarks)``."""
    tracks = list(tracks)

    def at(frame_index: int) -> list[tuple[int, NDArray[np.float32]]]:
        rows = ((t, t.row(frame_index)) for t in tracks)
        return [(t.track_id, t.landmarks[r]) for t, r in rows if r is not None]

    return at


def resolve_device(name: str) -> torch.device:
    """The torch device for ``RenderConfig.device`` (``"cuda"`` without a device is an error)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("render device 'cuda' asked for, but torch sees no CUDA device")
    return torch.device(name)


def _lid_gap(points: NDArray[np.floating], eye: list[int]) -> float:
    return float(np.linalg.norm(points[eye[2], :2] - points[eye[3], :2]))


def warp_points(before: NDArray[np.floating], after: NDArray[np.floating]) -> NDArray[np.intp]:
    """Indices of the landmarks that steer the warp: the mesh points the frame shows, plus irises
    that an edit moves relative to their eye while the eye stays open (gaze, not a blink).

    A mesh point that a nearer part of the face covers in the frame
    (``synthesis.reveal.hidden_points``: on a face turned three quarters away, the far cheek's
    points behind the nose) does not steer: its pixels are the nose's, which must move as the
    nose does. Steering by it dragged the background into the far cheek's outline on a turn of
    the PC-AVS clip, and painted the nose over the cheek it uncovers on the AFLW still. A point
    that only the edit hides keeps steering: its pixels are its own, and a turn away from the
    camera needs them (leaving out the outline points a 10-degree turn of the astronaut hides
    behind her cheek cost 0.5 degree of re-detected turn). Needs the landmarks' z (2-D
    landmarks keep every mesh point).

    Args:
        before, after: ``(478, 2|3)`` landmarks (any pixel frame).
    """
    seen = ~hidden_points(before) if before.shape[1] > 2 else np.ones(NUM_MESH_LANDMARKS, bool)
    keep = np.flatnonzero(seen).tolist()
    for iris, eye in _EYES:
        d_iris = (after[iris, :2] - before[iris, :2]).mean(axis=0)
        d_eye = (after[eye, :2] - before[eye, :2]).mean(axis=0)
        open_after = _lid_gap(after, eye) >= IRIS_MIN_GAP_FRACTION * _lid_gap(before, eye)
        if open_after and np.linalg.norm(d_iris - d_eye) > IRIS_RELATIVE_MOTION_PX:
            keep.extend(range(iris.start, iris.stop))
    return np.asarray(keep, dtype=np.intp)


def fold_free_points(src: NDArray[np.float64], dst: NDArray[np.float64], size: int, per_side: int,
                     protected: NDArray[np.bool_] | None = None, rounds: int = FOLD_DROP_ROUNDS) -> NDArray[np.intp]:
    """Rows of ``src``/``dst`` to keep so that no triangle of their triangulation turns over.

    Triangulates the kept source points with the crop's border anchors (as
    :func:`synthesis.warpfield.build_field` does), drops from each triangle that turns over
    between ``src`` and ``dst`` the one point whose motion differs most from its two neighbours',
    and repeats (at most ``rounds`` times; the field's own fold guard handles what is left).
    Dropping all three points instead cost a pose edit about 1 degree of re-detected yaw (the
    silhouette stayed behind); shrinking the edit, as the fold guard does, cost a pitch edit of
    -10 degrees half of its effect (bench/quality.py).

    Args:
        src, dst: ``(K, 2)`` crop pixels before and after the edit.
        size: crop side.
        per_side: border anchors per side (``WarpConfig.anchors_per_side``).
        protected: ``(K,)`` rows never dropped (None: none).
        rounds: most rounds of dropping.

    Returns:
        ``(K',)`` increasing row indices, K' >= 3 (all rows when nothing turns over).
    """
    keep = np.arange(len(src))
    anchors = border_anchors(size, per_side)
    for _ in range(rounds):
        verts, tris, _ = triangulate(src[keep], size, per_side)
        flips = flipped_triangles(verts, np.concatenate([dst[keep], anchors]), tris)
        if not flips.any():
            break
        bad = _culprits(tris[flips], src[keep], dst[keep], None if protected is None else protected[keep])
        if bad.size == 0 or len(keep) - len(bad) < 3:
            break
        keep = np.delete(keep, bad)
    return keep


def to_crop(points: NDArray[np.floating], crop: FaceCrop) -> NDArray[np.float64]:
    """``(K, 2)`` crop pixels of ``(K, 2|3)`` frame pixels ``points``."""
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


def _culprits(tris: NDArray[np.int64], src: NDArray[np.float64], dst: NDArray[np.float64],
              protected: NDArray[np.bool_] | None) -> NDArray[np.intp]:
    """One point per turned-over triangle: the one whose motion differs most from the other two
    (anchors, indices >= len(src), and protected points are never chosen)."""
    n = len(src)
    motion = np.concatenate([dst - src, np.zeros((tris.max() + 1 - n if tris.max() >= n else 0, 2))])
    dev = np.linalg.norm(motion[tris] - motion[tris].mean(axis=1, keepdims=True), axis=2)  # (T, 3)
    eligible = tris < n
    if protected is not None:
        eligible &= ~np.concatenate([protected, np.ones(max(tris.max() + 1 - n, 0), bool)])[tris]
    dev = np.where(eligible, dev, -1.0)
    pick = tris[np.arange(len(tris)), np.argmax(dev, axis=1)]
    return np.unique(pick[dev.max(axis=1) >= 0])


def render_face(
    image: NDArray[np.uint8],
    before: NDArray[np.floating],
    after: NDArray[np.floating],
    crop: FaceCrop,
    config: RenderConfig,
    device: torch.device | None = None,
    picture: tuple[int, int, int, int] | None = None,
) -> tuple[NDArray[np.uint8], tuple[float, int, float]]:
    """Warp one face of ``image`` from ``before`` to ``after`` landmarks inside ``crop``
    (:func:`face_warp`, then :func:`apply_warp`).

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame; not modified.
        before, after: ``(478, 3)`` frame pixels.
        crop: the face's crop in this frame (the field and mask are built at its resolution).
        config: warp, blend, crop and sampling settings.
        device: where to sample and blend (default: ``resolve_device(config.device)``).
        picture: the frame's picture area without letterbox bars (default:
            ``compositing.support.picture_area(image)``; a frame with several faces finds it once).

    Returns:
        The new frame (the same object when nothing moves) and (min Jacobian, fold repairs,
        largest displacement in crop pixels).
    """
    picture = picture_area(image) if picture is None else picture
    warp = face_warp(before, after, crop, config, picture, device)
    return apply_warp(image, warp, config), warp.stats


@dataclass(frozen=True, eq=False)
class FaceWarp:
    """One face's warp in one frame, before any of the frame's pixels are read: what
    :func:`apply_warp` samples and blends the frame through (both fields of an interlaced frame
    go through the same one).

    Attributes:
        crop: the crop the warp lives in.
        stats: (min Jacobian, fold repairs, largest displacement in crop pixels).
        field_and_mask: ``(1, 3, S, S)`` displacement x, y and blend mask, on the render device;
            None when nothing moves or the mask is empty.
        box: the frame box the mask can touch (None: nothing to blend).
        identity: nothing moves (the frame is returned as it is).
    """

    crop: FaceCrop
    stats: tuple[float, int, float]
    field_and_mask: torch.Tensor | None = None
    box: tuple[int, int, int, int] | None = None
    identity: bool = False


def face_warp(before: NDArray[np.floating], after: NDArray[np.floating], crop: FaceCrop, config: RenderConfig,
              picture: tuple[int, int, int, int], device: torch.device | None = None) -> FaceWarp:
    """The warp field and blend mask of one face (:func:`face_field`, :func:`blend_mask` times
    the motion weight) and the frame box they touch. Arguments as for :func:`render_face`."""
    fld = face_field(before, after, crop, config, picture)
    if fld.is_identity:
        return FaceWarp(crop, (1.0, 0, 0.0), identity=True)
    stats = (float(fld.min_jacobian), int(fld.repairs), float(fld.max_displacement))
    with torch.inference_mode():
        mask = blend_mask(to_crop(before, crop), to_crop(after, crop), crop.size, config)
        mask = mask * motion_weight(fld.sample_xy, config.blend.motion_px)
        box = support_box(crop, mask)
        if box is None:
            return FaceWarp(crop, stats)
        device = resolve_device(config.device) if device is None else device
        field_and_mask = torch.cat([fld.displacement().permute(2, 0, 1), mask[0]], 0)[None].to(device)
    return FaceWarp(crop, stats, field_and_mask, box)


def apply_warp(image: NDArray[np.uint8], warp: FaceWarp, config: RenderConfig) -> NDArray[np.uint8]:
    """``image`` sampled once through ``warp`` and blended back (a new array; ``image`` itself
    when nothing moves)."""
    if warp.identity:
        return image
    if warp.box is None or warp.field_and_mask is None:
        return image.copy()
    x0, y0, x1, y1 = warp.box
    with torch.inference_mode():
        if config.blend.method == "lerp":  # the default: sampled and blended where the mask lets through
            done = warp_blend_lerp(image, warp.crop, warp.field_and_mask, warp.box,
                                   INTERPOLATIONS[config.interpolation], config.blend.floor)
            out = image.copy()
            if done is not None:
                out[y0:y1, x0:x1] = done
            return out
        fg, alpha = sample_frame_through_field(image, warp.crop, warp.field_and_mask, warp.box,
                                               INTERPOLATIONS[config.interpolation])
        alpha = snap(alpha, config.blend.floor)
        out = image.copy()
        if not bool((alpha > 0).any()):
            return out
        out[y0:y1, x0:x1] = blend(image[y0:y1, x0:x1], fg, alpha, config.blend)
    return out


def blend_mask(before: NDArray[np.float64], after: NDArray[np.float64], size: int, config: RenderConfig) -> torch.Tensor:
    """``(1, 1, S, S)`` feathered mask of the face before and after the edit, and of the head and
    neck around it as far as the face oval moves (:data:`HEAD_MOTION_FULL`).

    Args:
        before, after: ``(478, 2|3)`` crop pixels.
        size: crop side ``S``.
        config: render settings (``blend``, ``head_grow``, ``neck_fade``).
    """
    ovals = (face_oval(before), face_oval(after))
    face = polygon_size(ovals)
    # The head moves as a whole when the oval does, rigidly (an expression bends it instead).
    try:
        scale, rot, shift = similarity_fit(ovals[0], ovals[1])
        moved = float(np.linalg.norm(scale * ovals[0] @ rot.T + shift - ovals[0], axis=1).max()) / max(face, 1e-9)
    except ValueError:  # a collapsed oval (a face a pixel wide): no head to grow the mask over
        moved = 0.0
    head = min(1.0, moved / HEAD_MOTION_FULL)
    polys = head_polygons(ovals, before, config.head_grow * head, config.neck_fade * face * head)
    bc = config.blend
    return polygon_mask(polys, size, dilate_px=bc.dilate * face, feather_px=bc.feather * face, floor=bc.floor)


def field_support(before: NDArray[np.float64], after: NDArray[np.float64], crop: FaceCrop, config: RenderConfig,
                  picture: tuple[int, int, int, int] | None = None) -> torch.Tensor | None:
    """``(S, S)`` weight on the field's displacement: the fade below the jaw line times the fade
    at the picture's edge (``compositing.support``); None when both are off.

    Args:
        before, after: ``(478, 2|3)`` crop pixels.
        crop: the face's crop.
        config: render settings (``neck_fade``, ``picture_taper``).
        picture: the frame's picture area ``(x0, y0, x1, y1)`` (default: the whole frame).
    """
    ovals = (face_oval(before), face_oval(after))
    face = polygon_size(ovals)
    weight = None
    if config.neck_fade > 0:
        weight = below_jaw_support(before, after, ovals, crop.size, config.neck_fade * face)
    if config.picture_taper > 0:
        h, w = crop.frame_size
        # No sample may cross the edge: a pixel at distance d from it moves by at most
        # d (the smoothstep's steepest slope is 1.5 / width, so width >= 1.5 x the largest motion).
        reach = float(np.linalg.norm(after[:, :2] - before[:, :2], axis=1).max())
        width = max(config.picture_taper * face, EDGE_WIDTH_PER_MOTION * reach)
        edge = picture_support(crop, picture or (0, 0, w, h), width)
        weight = edge if weight is None else weight * edge
    return weight


def face_field(before: NDArray[np.floating], after: NDArray[np.floating], crop: FaceCrop,
               config: RenderConfig, picture: tuple[int, int, int, int] | None = None) -> WarpField:
    """The warp field :func:`render_face` samples one face through: the steering landmarks
    (:func:`warp_points`, then :func:`fold_free_points` when ``config.drop_folding_points``) in
    crop pixels, and the field built from them, weighted by :func:`field_support`.

    Args:
        before, after: ``(478, 2|3)`` frame pixels.
        crop: the face's crop in this frame.
        config: render settings (``warp``, ``drop_folding_points``, the supports).
        picture: the frame's picture area (default: the whole frame; see
            ``compositing.support.picture_area``).

    Returns:
        The backward field on the ``crop.size`` square crop.
    """
    idx = warp_points(before, after)
    src = to_crop(before[idx], crop)
    dst = to_crop(after[idx], crop)
    if np.array_equal(src, dst):
        return _field(src, dst, crop.size, config.warp)
    if config.drop_folding_points:
        rows = fold_free_points(src, dst, crop.size, config.warp.anchors_per_side, np.isin(idx, KEEP_EXACT))
        src, dst = src[rows], dst[rows]
    support = field_support(to_crop(before, crop), to_crop(after, crop), crop, config, picture)
    return _field(src, dst, crop.size, config.warp, support)


def _field(src: NDArray[np.float64], dst: NDArray[np.float64], size: int, config: WarpConfig,
           support: torch.Tensor | None = None) -> WarpField:
    """The warp field, first without the fold guard; with it only when the fold is more than a
    few pixels (see :data:`FOLD_TOLERANCE_FRACTION`; openings are no folds: ``build_field``
    leaves them out of ``folded_px`` and of its guard)."""
    fld = build_field(src, dst, size, dataclasses.replace(config, max_repairs=0), support=support)
    if config.max_repairs == 0 or fld.folded_px <= max(FOLD_TOLERANCE_MIN_PX, FOLD_TOLERANCE_FRACTION * size * size):
        return fld
    return build_field(src, dst, size, config, support=support)


def opening_mask(src: NDArray[np.float64], dst: NDArray[np.float64], size: int, config: WarpConfig) -> NDArray[np.bool_]:
    """``(S-1, S-1)`` crop pixels where an edit opens something that was closed (a closed mouth or
    eye being opened: the field's Jacobian is 0 there by construction, and ``build_field``'s fold
    guard leaves it alone). See ``synthesis.piecewise.opening_triangles``."""
    return _opening_mask(src, dst, size, config.anchors_per_side)


class EditStage:
    """Render stage applying :class:`FacePlan` edits (latency 0; stateless per frame).

    Args:
        plans: one plan per edited face.
        frame_size: ``(height, width)`` of the clip's frames.
        config: render settings.
        texture: optional region-texture hook (``plugin.texture_stage.TextureCompositor``), called
            as ``texture(image, frame_index, plan, row, owned=...) -> image`` after each face is
            warped (``owned``: the image is this stage's own copy, which the hook may write into),
            from several threads at once: it must be thread-safe (the compositor locks its frame
            reader).
        fields: the frames are interlaced and their fields are the frame's rows: each face's
            warp is applied field by field, each from its own rows only (``compositing.fields``;
            sampling, blending and texture run twice).
        faces: every tracked face in a frame, ``frame index -> [(track id, (478, 3) landmarks)]``
            (:func:`tracked_faces`). The heads of faces nearer the camera than an edited face
            (:func:`faces_in_front`) keep their pixels through its edit
            (``compositing.occlusion.keep_in_front``). None: only the edited faces are known.
        occluders: what covers an edited face, ``(track id, frame index) -> ((S, S) UV mask,
            landmarks or None)`` or None (``plugin.occluder_pass.Occluders.covering``): those
            pixels keep the frame's bytes through the face's edit
            (``compositing.occlusion.occluder_weight``), the mask taken onto the frame through
            the landmarks given (a plate's face, in swap repair) or else the face's own. None:
            none known.
    """

    latency = 0
    #: Stateless per frame: the render pass may push several frames at once from different
    #: threads (the texture hook is thread-safe).
    parallel_safe = True

    def __init__(self, plans: Sequence[FacePlan], frame_size: tuple[int, int], config: RenderConfig | None = None,
                 texture: Callable[[NDArray[np.uint8], int, FacePlan, int], NDArray[np.uint8]] | None = None,
                 fields: bool = False,
                 faces: Callable[[int], Sequence[tuple[int, NDArray[np.floating]]]] | None = None,
                 occluders: Callable[[int, int], tuple[NDArray[np.float32], NDArray[np.floating] | None] | None]
                 | None = None):
        self.config = config or RenderConfig()
        self.occluders = occluders
        self.texture = texture  # texture hook (plugin/texture_stage.py)
        self.fields = fields
        self.faces = faces
        self.device = resolve_device(self.config.device)  # a missing GPU is refused before any frame
        self.info: list[FaceRenderInfo] = []
        self._by_frame: dict[int, list[tuple[FacePlan, int, FaceCrop]]] = {}
        for plan in plans:
            if plan.frame_indices.size == 0:
                continue
            both = np.concatenate([plan.before, plan.after], axis=1)
            crops = track_crops(both, plan.times, frame_size, self.config.crop, plan.segments)
            if self.config.crop.size is None and crops[0].size > self.config.max_field_size:
                capped = dataclasses.replace(self.config.crop, size=self.config.max_field_size)
                crops = track_crops(both, plan.times, frame_size, capped, plan.segments)
            for row, (fi, crop) in enumerate(zip(plan.frame_indices, crops, strict=True)):
                self._by_frame.setdefault(int(fi), []).append((plan, row, crop))

    def face_crop(self, track_id: int, frame_index: int) -> FaceCrop | None:
        """The crop face ``track_id`` is rendered in at ``frame_index`` (None: not edited there)."""
        for plan, _, crop in self._by_frame.get(frame_index, []):
            if plan.track_id == track_id:
                return crop
        return None

    @property
    def edited_frames(self) -> list[int]:
        return sorted(self._by_frame)

    def push(self, frame: Frame) -> list[Frame]:
        jobs = self._by_frame.get(frame.index)
        if not jobs:
            return [frame]
        image = frame.image
        picture = picture_area(image)
        for plan, row, crop in jobs:
            face = self._by_field if self.fields else self._face
            edited, (jac, repairs, disp) = face(image, frame, plan, row, crop, picture)
            front = faces_in_front(plan.before[row], self._others(frame.index, plan.track_id, jobs))
            box = crop_box(crop)
            covered = self.occluders(plan.track_id, frame.index) if self.occluders is not None else None
            if edited is not image:
                edited = keep_covered(edited, image, covered, plan.before[row], box, self.config.neck_fade)
            image = keep_in_front(edited, image, front, box)
            self.info.append(FaceRenderInfo(plan.track_id, frame.index, jac, repairs, disp))
        if image is frame.image:
            return [frame]
        return [Frame(frame.index, frame.pts, frame.time_base, image)]

    def _others(self, frame_index: int, track_id: int,
                jobs: list[tuple[FacePlan, int, FaceCrop]]) -> list[NDArray[np.floating]]:
        """The other faces in a frame: as tracked, and as edited where this stage edits them."""
        others = [lm for tid, lm in (self.faces(frame_index) if self.faces else ()) if tid != track_id]
        others += [p.after[r] for p, r, _ in jobs if p.track_id != track_id]
        return others

    def _face(self, image: NDArray[np.uint8], frame: Frame, plan: FacePlan, row: int, crop: FaceCrop,
              picture: tuple[int, int, int, int]) -> tuple[NDArray[np.uint8], tuple[float, int, float]]:
        """One face warped into ``image`` (:meth:`_apply`)."""
        warp = face_warp(plan.before[row], plan.after[row], crop, self.config, picture, self.device)
        return self._apply(image, frame, plan, row, warp), warp.stats

    def _apply(self, image: NDArray[np.uint8], frame: Frame, plan: FacePlan, row: int,
               warp: FaceWarp) -> NDArray[np.uint8]:
        """``warp`` applied to ``image``, then the face's borrowed regions (the texture hook)."""
        image = apply_warp(image, warp, self.config)
        if self.texture is not None:  # texture hook: regions borrowed from exemplar frames
            # a copy made by the warp may be written into; the frame's own image not
            image = self.texture(image, frame.index, plan, row, owned=image is not frame.image)
        return image

    def _by_field(self, image: NDArray[np.uint8], frame: Frame, plan: FacePlan, row: int, crop: FaceCrop,
                  picture: tuple[int, int, int, int]) -> tuple[NDArray[np.uint8], tuple[float, int, float]]:
        """The face's warp (built once) applied to each field of an interlaced frame alone
        (``compositing.fields``): the frame's rows of that field from a copy whose other rows
        were rebuilt from it."""
        warp = face_warp(plan.before[row], plan.after[row], crop, self.config, picture, self.device)
        if warp.identity and self.texture is None:
            return image, warp.stats
        box = crop_box(crop)
        x0, y0, x1, y1 = box
        out = image
        for parity in (0, 1):
            own = field_image(image, parity, box)
            done = self._apply(own, frame, plan, row, warp)
            if out is frame.image:
                out = image.copy()
            first = y0 + (parity - y0) % 2
            out[first:y1:2, x0:x1] = done[first:y1:2, x0:x1]
        return out, warp.stats

    def flush(self) -> list[Frame]:
        return []

    def reset(self) -> None:
        pass
