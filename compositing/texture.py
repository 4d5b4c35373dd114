"""Putting a borrowed region texture onto a frame: sample, colour-match, feathered composite.

The geometry (which source pixel lands on which target pixel) comes from elsewhere as remap
maps over a target box (``synthesis.uvmap.correspondence_map``: the exemplar's region taken
through the mesh's UV space onto the edited face). This module only does pixels:

1. :func:`sample`: the source image at the maps (bicubic), float32 RGB in [0, 1];
2. :func:`match_colour`: per-channel mean and standard deviation in CIE Lab of the sampled
   texture made equal to the target's over a RING around the region (pixels both have), so
   light and white balance of the exemplar frame follow the current frame;
3. :func:`feathered_alpha` and :func:`composite`: alpha 0 at the region's edge rising smoothly to
   1 at ``feather_px`` inside, times an overall weight; pixels with alpha 0 keep their bytes.

Before the composite, :func:`ring_agreement` checks that the current frame shows the face around
the region at all: over the ring, the exemplar's texture and the frame should be the same skin
under different light. Where something covers the region (a hand over the mouth, a microphone,
a card), they disagree, and :func:`uncovered_weight` holds the texture back: an eye or a mouth is
not pasted onto what is in front of the face.

Images are ``(h, w, 3)`` uint8 RGB (or float32 RGB in [0, 1] where said); masks ``(h, w)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.errors import ConfigError

#: Standard deviation ratios (target / source) are kept within [1 / this, this].
MAX_STD_RATIO = 2.0
#: Fewest ring pixels for a colour match (below: the texture is used unmatched).
MIN_RING_PIXELS = 16
#: Most ring pixels the colour statistics are measured on (evenly spaced beyond that).
MAX_RING_SAMPLES = 4096
#: Ring agreement (:func:`ring_agreement`) at or below which the region counts as covered (no
#: texture), and from which it counts as clear (full texture); smoothstep between. Edits of the
#: LivePortrait and retalking clips read 0.72-0.98 (5th percentile 0.75, median 0.94-0.98); a
#: card held over the LivePortrait mouth reads -0.15 to -0.12 (``tests/plugin/test_occlusion.py``).
COVERED_AT = 0.3
CLEAR_AT = 0.6


@dataclass(frozen=True)
class TextureBlendConfig:
    """Sizes of the region composite, in inter-ocular distances (IOD) of the target face.

    Attributes:
        feather_iod: width of the soft edge inside the region.
        ring_iod: width of the colour-matching ring outside the region.
        match_colour: match mean/std in Lab over the ring (else use the exemplar's colours).
        hold_back_covered: weigh the texture by :func:`uncovered_weight` of the ring agreement
            (off where the frame's face is known to be missing, as when a lost face is rebuilt).
    """

    feather_iod: float = 0.06
    ring_iod: float = 0.08
    match_colour: bool = True
    hold_back_covered: bool = True

    def __post_init__(self) -> None:
        if not self.feather_iod > 0 or not self.ring_iod > 0:
            raise ConfigError(f"TextureBlendConfig: feather_iod and ring_iod must be > 0, got "
                              f"{self.feather_iod}, {self.ring_iod}")


def sample(image: NDArray[np.uint8], map_x: NDArray[np.float32], map_y: NDArray[np.float32]) -> NDArray[np.float32]:
    """``(h, w, 3)`` float32 RGB in [0, 1]: ``image`` at the maps (bicubic, edges replicated)."""
    out = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return out.astype(np.float32) / 255.0


def _lab(rgb: NDArray[np.floating]) -> NDArray[np.float32]:
    """Float CIE Lab (L 0..100) of RGB in [0, 1] (float) or uint8. Float, not OpenCV's 8-bit
    Lab: its quantization (0.4 L units) would add a per-pixel noise that moves with the texture
    from frame to frame (flicker)."""
    f = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else np.clip(rgb, 0, 1).astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2Lab)


def _bbox(mask: NDArray[np.bool_]) -> tuple[slice, slice]:
    """Row and column slices of the smallest box holding ``mask``'s True pixels (empty if none)."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return slice(y, y + h), slice(x, x + w)


def match_colour(texture: NDArray[np.float32], target: NDArray[np.floating], ring: NDArray[np.bool_],
                 where: NDArray[np.bool_] | None = None) -> NDArray[np.float32]:
    """Make ``texture``'s Lab mean and std over ``ring`` equal ``target``'s there.

    The statistics are taken on at most :data:`MAX_RING_SAMPLES` ring pixels (evenly spaced in
    raster order), and the correction is computed over the box around ``where`` only.

    Args:
        texture: ``(h, w, 3)`` float32 RGB in [0, 1], the sampled exemplar.
        target: ``(h, w, 3)`` the current frame there (uint8, or float in [0, 1]).
        ring: ``(h, w)`` bool pixels to measure on.
        where: ``(h, w)`` bool pixels to correct (None: all); others are returned as they were.

    Returns:
        ``(h, w, 3)`` float32 RGB in [0, 1] (``texture`` itself when the ring is too small).
    """
    if np.count_nonzero(ring) < MIN_RING_PIXELS:
        return texture
    idx = _ring_samples(ring)
    t = _lab(target.reshape(-1, 3)[idx][None])[0]
    src = _lab(texture.reshape(-1, 3)[idx][None])[0]
    mu_s, mu_t = src.mean(axis=0), t.mean(axis=0)
    sd_s, sd_t = src.std(axis=0) + 1e-3, t.std(axis=0) + 1e-3
    gain = np.clip(sd_t / sd_s, 1.0 / MAX_STD_RATIO, MAX_STD_RATIO).astype(np.float32)
    shift = (mu_t - mu_s * gain).astype(np.float32)
    rows, cols = (slice(None), slice(None)) if where is None else _bbox(where)
    out = texture.copy()
    lab = _lab(texture[rows, cols])
    lab *= gain
    lab += shift
    fixed = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)
    if where is None:
        out[rows, cols] = fixed
    else:
        np.copyto(out[rows, cols], fixed, where=where[rows, cols, None])
    return out


def _ring_samples(ring: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Flat indices of at most :data:`MAX_RING_SAMPLES` ring pixels, evenly spaced in raster order."""
    idx = np.flatnonzero(ring)
    if idx.size > MAX_RING_SAMPLES:
        idx = idx[np.linspace(0, idx.size - 1, MAX_RING_SAMPLES).round().astype(np.intp)]
    return idx


def ring_agreement(texture: NDArray[np.float32], target: NDArray[np.uint8], ring: NDArray[np.bool_]) -> float | None:
    """Normalized cross-correlation of luminance between ``texture`` (float32 RGB in [0, 1]) and
    ``target`` (uint8 RGB) over ``ring``: near 1 where both show the same skin (light and colour
    cancel out), near 0 or below where the target shows something else there. None when the ring
    has fewer than :data:`MIN_RING_PIXELS` pixels or either side is flat."""
    if np.count_nonzero(ring) < MIN_RING_PIXELS:
        return None
    idx = _ring_samples(ring)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    a = texture.reshape(-1, 3)[idx] @ luma
    b = target.reshape(-1, 3)[idx].astype(np.float32) @ (luma / 255.0)
    a -= a.mean()
    b -= b.mean()
    norm = float(np.sqrt(float(a @ a) * float(b @ b)))
    return float(a @ b) / norm if norm > 1e-9 else None


def uncovered_weight(agreement: float | None) -> float:
    """Weight on a borrowed texture from its ring agreement: 0 at or below :data:`COVERED_AT`,
    1 from :data:`CLEAR_AT`, smoothstep between (1 when the agreement cannot be measured)."""
    if agreement is None:
        return 1.0
    u = min(max((agreement - COVERED_AT) / (CLEAR_AT - COVERED_AT), 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def feathered_alpha(region: NDArray[np.bool_], feather_px: float) -> NDArray[np.float32]:
    """``(h, w)`` float32: 0 outside ``region``, smoothstep of the distance to its edge inside,
    1 from ``feather_px`` in."""
    if feather_px <= 0:
        return region.astype(np.float32)
    d = cv2.distanceTransform(np.pad(region.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    u = np.clip(d / feather_px, 0.0, 1.0)
    return (u * u * (3.0 - 2.0 * u)).astype(np.float32)


def ring_mask(region: NDArray[np.bool_], covered: NDArray[np.bool_], ring_px: float) -> NDArray[np.bool_]:
    """``(h, w)`` bool: pixels within ``ring_px`` outside ``region`` that ``covered`` has."""
    d = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 5)
    return (d > 0) & (d <= max(ring_px, 1.0)) & covered


def composite(base: NDArray[np.uint8], texture: NDArray[np.float32], alpha: NDArray[np.floating]) -> NDArray[np.uint8]:
    """``(h, w, 3)`` uint8: ``base`` blended toward ``texture`` by ``alpha`` in [0, 1]; pixels
    with alpha 0 keep their exact bytes (only the box around alpha > 0 is computed)."""
    a = np.clip(np.asarray(alpha, np.float32), 0, 1)
    out = base.copy()
    rows, cols = _bbox(a > 0)
    a = a[rows, cols, None]
    b = base[rows, cols].astype(np.float32)
    mixed = b + (texture[rows, cols] * 255.0 - b) * a
    blended = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    np.copyto(out[rows, cols], blended, where=a > 0)
    return out
