"""What covers a tracked face: a hand, a microphone, a card held in front of it.

The landmarker keeps tracking a face that something partly covers, and makes up the features
under it; an edit there would warp the occluder with the face (a microphone bent by a jaw drop,
a card's edges curved by a head turn). This module finds, per frame, the part of the face where
the picture no longer shows the face's own skin.

Each frame's face is unwrapped into the canonical mesh's UV space (``synthesis.uvmap.unwrap``),
where the same skin lands on the same texels whatever the pose and the expression, and its
luminance is compared with the median of its track's frames (the *reference*) by local
structure: both high-passed, the frame's detail divided by the local ratio of their brightness
(so light that scales the skin, a shadow, a dimmer or coloured stage light, cancels), and the two
compared as SSIM's contrast-structure term over a small window. Light leaves the face's own
features in place (the lip line, the nostrils, the brows, the skin's grain); an occluder puts its
own edges where the features were, or none. Where the dissimilarity is high outside the eyes'
and the mouth's cores (which change with expression: a glance, a blink, an opening mouth), it
seeds a region; the region then grows over texels that are fairly dissimilar (the mouth under a
hand included). Regions under :attr:`OccluderConfig.min_share` of the face are dropped, and a
texel counts as covered where it does in most of the frames around it.

What it cannot see: an occluder present in most of the reference frames is part of the
reference (a face that never shows its mouth has no mouth to compare with), and one with the
skin's own colour and no edges (a smooth, evenly lit palm over a cheek) reads as skin. Both are
left as they were before this module: the warp moves them with the face.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from synthesis.texregions import REGIONS
from synthesis.regions import LIPS
from synthesis.uvmap import grow, region_triangles, triangles, unwrap, uv_coords, uv_raster
from tracking.errors import ConfigError

#: UV texture side of the comparison (texels; the face's width spans about this many).
UV_SIDE = 128
#: Texels of triangles facing the camera less than this are left out (their texture is smeared).
MIN_FACING = 0.3
#: Rings of mesh vertices around the lips whose skin moves with the mouth (a chin that bulges as
#: the lips roll in, cheeks stretched by an open mouth): they join a covered region but do not
#: start one.
MOUTH_RINGS = 3
#: Texels a mask reaches into what the frame does not see of the face (its turned-away side).
UNSEEN_REACH = 8
#: Luminance at or below / at or above which a texel is clipped (no structure to compare).
CLIPPED_BELOW, CLIPPED_ABOVE = 3.0, 252.0
#: The light (log luminance ratio) is median-filtered in steps of 1 / this (range +-128 steps: a
#: light 7 times brighter or dimmer than the reference's).
LIGHT_LEVELS = 64.0
#: Rounds of evening the reference rows' light (:func:`reference`).
REFERENCE_ROUNDS = 2
#: Added to the luminance before its logarithm, so that noise in dark skin is not blown up.
LOG_OFFSET = 16.0


@dataclass(frozen=True)
class OccluderConfig:
    """How occluders are found (sizes in texels of the :data:`UV_SIDE` texture, unless said).

    Attributes:
        seed_at: dissimilarity (0 same structure, 1 unrelated, up to 2 opposite) from which a
            texel outside the eyes' and the mouth's cores starts a covered region.
        grow_at: dissimilarity over which a region grows from its seeds (any texel).
        min_share: smallest region kept, as a share of the face's texels seen in the frame.
        min_outline: least share of the face's outline a region must reach: what covers a face
            comes from outside it (a hand, a microphone on its stand, a card); a change inside
            the face that reaches no edge is the face's own (lips rolled in, a frown).
        outline: width of the outline (texels).
        highpass: sigma of the blur the detail is taken against.
        window: sigma of the window the structures are compared over.
        light_window: sigma of the window the brightness ratio (the light) is measured over.
        noise: the comparison's constant (squared log luminance): structure weaker than this in
            both images compares as the same.
        reference_rows: most frames of the track the reference median is taken over.
        temporal: frames each side of a frame that vote on its mask (majority).
        dilate: texels the mask is grown by (an occluder's edge blurs into the window).
    """

    seed_at: float = 0.85
    grow_at: float = 0.6
    min_share: float = 0.03
    min_outline: float = 0.03
    outline: int = 3
    highpass: float = 2.0
    window: float = 5.0
    light_window: float = 7.0
    noise: float = 4e-4
    reference_rows: int = 48
    temporal: int = 2
    dilate: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.grow_at <= self.seed_at:
            raise ConfigError(f"OccluderConfig: need 0 < grow_at <= seed_at, got {self.grow_at}, {self.seed_at}")
        if not 0 <= self.min_share < 1:
            raise ConfigError(f"OccluderConfig: min_share must be in [0, 1), got {self.min_share}")
        if min(self.highpass, self.window, self.light_window, self.noise) <= 0:
            raise ConfigError("OccluderConfig: highpass, window, light_window and noise must be > 0")
        if self.reference_rows < 3 or self.temporal < 0 or self.dilate < 0:
            raise ConfigError(f"OccluderConfig: need reference_rows >= 3, temporal >= 0, dilate >= 0, got "
                              f"{self.reference_rows}, {self.temporal}, {self.dilate}")


@functools.lru_cache(maxsize=2)
def _moving_texels(size: int) -> NDArray[np.bool_]:
    """``(S, S)`` texels that change with expression (read-only): the eyes' cores and the lips
    with :data:`MOUTH_RINGS` rings of skin around them."""
    tri_map, _ = uv_raster(size)
    mouth = region_triangles(grow(LIPS, MOUTH_RINGS))
    moving = np.concatenate([REGIONS["eye_left"].core_triangles, REGIONS["eye_right"].core_triangles, mouth])
    out = np.isin(tri_map, moving)
    out.flags.writeable = False
    return out


def face_luma(image: NDArray[np.uint8], landmarks: NDArray[np.floating],
              size: int = UV_SIDE) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """One face's luminance in UV space.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        landmarks: ``(468+, 3)`` the face's landmarks in it (pixels, MediaPipe z).
        size: UV side.

    Returns:
        ``(S, S)`` float32 luminance (0-255; 0 where not seen) and ``(S, S)`` bool: the texels seen
        (on the mesh, facing the camera at least :data:`MIN_FACING`, inside the frame).
    """
    tex, weight = unwrap(image, landmarks, size)
    luma = cv2.cvtColor(tex, cv2.COLOR_RGB2GRAY).astype(np.float32)
    seen = weight >= MIN_FACING
    luma[~seen] = 0
    return luma, seen


def _usable(luma: NDArray[np.float32], seen: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The seen texels that are not clipped to black or white."""
    return seen & (luma > CLIPPED_BELOW) & (luma < CLIPPED_ABOVE)


def _light(lf: NDArray[np.float32], lr: NDArray[np.float32], both: NDArray[np.bool_], window: float) -> NDArray[np.float32]:
    """The light of a frame against a reference, both log luminance: their difference,
    median-filtered over a ``2 * window + 1`` square (a median keeps the step of a shadow's or a
    spotlight's edge, where a mean would smear it into a false edge)."""
    size = 2 * int(round(window)) + 1
    # the median on 8 bits (OpenCV's is fast there only): steps of 1/LIGHT_LEVELS in log luminance
    q = np.clip(np.rint(_fill_unseen(lf - lr, both) * LIGHT_LEVELS + 128), 0, 255).astype(np.uint8)
    return (cv2.medianBlur(q, size).astype(np.float32) - 128) / LIGHT_LEVELS


def reference(lumas: NDArray[np.float32], seen: NDArray[np.bool_], config: OccluderConfig | None = None) -> NDArray[np.float32]:
    """``(S, S)`` float32: what the face looks like under even light, from ``(N, S, S)`` lumas.

    The per-texel median of the rows' log luminance, taken again after each row's own light
    against it (:func:`_light`) is taken off, :data:`REFERENCE_ROUNDS` times: a strobe or a
    spotlight in some of the rows then does not leave its edge in the reference. Texels no row
    shows unclipped are NaN."""
    c = config or OccluderConfig()
    ok = np.stack([_usable(lumas[i], seen[i]) for i in range(len(lumas))])
    logs = np.log(np.maximum(lumas, 0) + LOG_OFFSET).astype(np.float32)
    stack = np.where(ok, logs, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # texels no row sees
        ref = np.nanmedian(stack, axis=0)
        for _ in range(REFERENCE_ROUNDS):
            have = np.isfinite(ref)
            lr = np.where(have, ref, 0).astype(np.float32)
            evened = [np.where(ok[i], logs[i] - _light(logs[i], lr, ok[i] & have, c.light_window), np.nan)
                      if (ok[i] & have).any() else np.full(ref.shape, np.nan, np.float32) for i in range(len(logs))]
            ref = np.nanmedian(np.stack(evened), axis=0)
    return (np.exp(ref) - LOG_OFFSET).astype(np.float32)


def _mean_over(x: NDArray[np.float32], w: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    """Gaussian mean of ``x`` over the texels weighted ``w`` (unseen texels do not leak in)."""
    return cv2.GaussianBlur(x * w, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-3)


def _fill_unseen(x: NDArray[np.float32], both: NDArray[np.bool_]) -> NDArray[np.float32]:
    """``x`` with every texel outside ``both`` set to the nearest one inside (a filter's window
    near the mesh's edge then reads the face, not zeros)."""
    if both.all():
        return x
    _, (iy, ix) = ndimage.distance_transform_edt(~both, return_indices=True)
    return x[iy, ix]


def dissimilarity(luma: NDArray[np.float32], seen: NDArray[np.bool_], ref: NDArray[np.float32],
                  config: OccluderConfig | None = None) -> NDArray[np.float32]:
    """``(S, S)`` float32: how unlike the reference's structure the frame's is, per texel.

    Both lumas are taken to logarithms, so light is an added term: the frame minus the
    reference, median-filtered, is the light (:func:`_light`), and is taken off the frame.
    What is left is compared with the reference by SSIM's contrast-structure term of their
    high-passed values: 1 minus it is returned (0 the same structure, 1 unrelated, up to 2
    opposite). 0 where unseen: by this frame or the reference, or clipped to black or white in
    either (a strobe's burnt-out skin shows no structure to compare).

    Args:
        luma, seen: one frame (:func:`face_luma`).
        ref: the track's reference (:func:`reference`).
        config: window sizes and the noise constant.
    """
    c = config or OccluderConfig()
    r = np.nan_to_num(ref, nan=0.0)
    both = _usable(luma, seen) & np.isfinite(ref)
    if not both.any():
        return np.zeros(luma.shape, np.float32)
    w = both.astype(np.float32)
    lf = np.log(np.where(both, luma, 0) + LOG_OFFSET).astype(np.float32)
    lr = np.log(np.where(both, np.maximum(r, 0), 0) + LOG_OFFSET).astype(np.float32)
    g = lf - _light(lf, lr, both, c.light_window)
    fd = (g - _mean_over(g, w, c.highpass)) * w
    rd = (lr - _mean_over(lr, w, c.highpass)) * w
    ff = _mean_over(fd * fd, w, c.window)
    rr = _mean_over(rd * rd, w, c.window)
    fr = _mean_over(fd * rd, w, c.window)
    d = 1.0 - (2.0 * fr + c.noise) / (ff + rr + c.noise)
    return np.where(both, d, 0.0).astype(np.float32)


def covered_regions(d: NDArray[np.float32], seen: NDArray[np.bool_],
                    config: OccluderConfig | None = None) -> NDArray[np.bool_]:
    """``(S, S)`` bool: the covered regions of one frame, from its :func:`dissimilarity` ``d``.

    Seeds (``d >= seed_at`` outside the eyes' and the mouth's cores) grown over ``d >= grow_at``;
    regions smaller than ``min_share`` of the seen texels, or reaching less than ``min_outline``
    of the face's outline (:func:`face_outline`), dropped."""
    c = config or OccluderConfig()
    seen_n = int(seen.sum())
    if seen_n == 0:
        return np.zeros_like(seen)
    grown = seen & (d >= c.grow_at)
    seeds = grown & (d >= c.seed_at) & ~_moving_texels(d.shape[0])
    if not seeds.any():
        return np.zeros_like(seen)
    labels, n = ndimage.label(grown)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    seeded = np.zeros(n + 1, bool)
    seeded[np.unique(labels[seeds])] = True
    outline = face_outline(seen, c.outline)
    touching = np.bincount(labels[outline], minlength=n + 1)
    keep = seeded & (sizes >= c.min_share * seen_n) & (touching >= c.min_outline * max(int(outline.sum()), 1))
    keep[0] = False
    return keep[labels]


def face_outline(seen: NDArray[np.bool_], width: int) -> NDArray[np.bool_]:
    """``(S, S)`` the seen texels within ``width`` of the face's outline: where the face ends
    (its oval, the frame's edge, the side turned away), not the holes inside it (a nostril's
    triangles turned away)."""
    filled = ndimage.binary_fill_holes(seen)
    inner = ndimage.binary_erosion(filled, iterations=width, border_value=0)
    return seen & ~inner


def occluder_masks(covered: NDArray[np.bool_], seen: NDArray[np.bool_],
                   config: OccluderConfig | None = None) -> NDArray[np.float32]:
    """``(N, S, S)`` float32 in [0, 1] per row of consecutive frames: covered where most of the
    frames within ``temporal`` of it are (a region seen in one frame alone is noise; one that
    comes and goes is held over its neighbours), its holes filled, reaching :data:`UNSEEN_REACH`
    into the texels the frame does not see, grown by ``dilate`` texels and softened by one.

    Args:
        covered: ``(N, S, S)`` from :func:`covered_regions`, one row per frame, in frame order
            (rows of one shot; a cut between rows is the caller's to split at).
        seen: ``(N, S, S)`` the texels each frame sees.
        config: ``temporal`` and ``dilate``.
    """
    c = config or OccluderConfig()
    n = covered.shape[0]
    out = np.zeros(covered.shape, np.float32)
    if n == 0 or not covered.any():
        return out
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * c.dilate + 1,) * 2) if c.dilate else None
    unseen_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * UNSEEN_REACH + 1,) * 2)
    counts = covered.astype(np.int16)
    for i in range(n):
        lo, hi = max(i - c.temporal, 0), min(i + c.temporal + 1, n)
        votes = counts[lo:hi].sum(axis=0)
        m = votes * 2 > (hi - lo)
        if not m.any():
            continue
        # no holes (a closed mouth's thin triangles), and on into what the frame does not see
        # (the cheek's side turned away, the mesh's edge): the frame's pixels there are covered too
        m = ndimage.binary_fill_holes(m)
        m = (m | (cv2.dilate(m.astype(np.uint8), unseen_kernel) > 0) & ~seen[i]).astype(np.uint8)
        if kernel is not None:
            m = cv2.dilate(m, kernel)
        out[i] = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 1.0)
    return out


@functools.lru_cache(maxsize=2)
def uv_points(size: int = UV_SIDE) -> NDArray[np.float64]:
    """``(468, 2)`` the mesh's vertices in texel coordinates of an ``S``-side UV texture (the
    source points that map a face's pixels onto its texels; read-only)."""
    out = uv_coords().astype(np.float64) * size - 0.5
    out.flags.writeable = False
    return out


def all_triangles() -> NDArray[np.intp]:
    """Every mesh triangle's index."""
    return np.arange(len(triangles()), dtype=np.intp)


def track_masks(lumas: NDArray[np.float32], seen: NDArray[np.bool_], reference_rows: NDArray[np.integer],
                config: OccluderConfig | None = None) -> NDArray[np.float32]:
    """``(N, S, S)`` float32 occluder masks of a run of consecutive frames of one face.

    Two passes: the reference is the median of ``reference_rows``; it is taken again without the
    texels the first pass found covered, so that an occluder in some of those rows stops being
    part of what the face looks like (the masks of the second pass are returned).

    Args:
        lumas: ``(N, S, S)`` from :func:`face_luma`, one row per frame, in frame order, of one
            shot (the temporal vote runs across the rows).
        seen: ``(N, S, S)`` their seen texels.
        reference_rows: ``(R,)`` the rows the reference is the median of (at least 3).
        config: thresholds.
    """
    c = config or OccluderConfig()
    n = lumas.shape[0]
    masks = np.zeros(lumas.shape, np.float32)
    pick = np.asarray(reference_rows, np.intp)
    if n == 0 or pick.size < 3:
        return masks
    use = seen[pick]
    for _ in range(2):
        ref = reference(lumas[pick], use, c)
        covered = np.stack([covered_regions(dissimilarity(lumas[i], seen[i], ref, c), seen[i], c) for i in range(n)])
        masks = occluder_masks(covered, seen, c)
        if not masks.any():
            break
        use = seen[pick] & ~(masks[pick] > 0)
    return masks
