"""What covers a tracked face: a hand, a microphone, a card held in front of it.

The landmarker keeps tracking a face that something partly covers, and makes up the features
under it; an edit there would warp the occluder with the face (a microphone bent by a jaw drop,
a card's edges curved by a head turn). This module finds, per frame, the part of the face where
the picture no longer shows the face's own skin.

Each frame's face is unwrapped into the canonical mesh's UV space (``synthesis.uvmap.unwrap``),
where the same skin lands on the same texels whatever the pose and the expression, and its log
luminance is compared with a *reference*: the per-texel median of the face's frames nearby, each
with its own light evened out first. Light is an added term in logarithms: the frame minus the
reference, median-filtered (which keeps the step of a shadow's or a spotlight's edge), is taken
off, and what is left is compared with the reference by SSIM's contrast-structure term of their
high-passed values. Light leaves the face's own features in place (the lip line, the nostrils,
the brows, the skin's grain); an occluder puts its own edges where the features were, or none.

Where the dissimilarity is high outside the eyes and the lips (which change with expression: a
glance, a blink, lips rolled in), it seeds a region; the region grows over texels that are fairly
dissimilar (the mouth under a hand included). A region is kept when it is large, unlike the face
all over (on average, not in a few texels), reaches the face's outline (what covers a face comes
from outside it; a change inside the face that reaches no edge is the face's own) and lasts most
of the frames around it. A frame showing too
little of the face (cut by the frame's edge, turned far away) is not looked at: the landmarker
registers it too loosely. The reference is taken twice, the second time without what the first
found covered.

What it cannot see, and leaves to the warp as before: an occluder present in most of the
reference frames is part of the reference (a face that never shows its mouth has no mouth to
compare with); one with the skin's own colour and few edges (a smooth palm) reads as skin; one
under :attr:`OccluderConfig.min_share` of the face (a finger) is not told from the face's own
changes. The thresholds lean that way on purpose: a false alarm leaves part of an edited face
unedited, which shows more than a bent occluder.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from synthesis.regions import LIPS
from synthesis.texregions import REGIONS
from synthesis.uvmap import grow, region_triangles, triangle_texels, unwrap
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
#: An eye takes many states (a gaze, a blink) where the median reference holds one: in the
#: second pass an eye's texels are compared with up to this many of the reference's own frames
#: too (where the first pass found them uncovered), at least :data:`STATE_GAP` frames from the
#: frame looked at, and count as unlike the face only if unlike each of them (an eye looking
#: aside beside a card over the mouth joined the card's mask, and a blink there was held back).
#: Not the lips: a dark microphone over them matches an open mouth's dark inside.
STATE_ROWS, STATE_GAP = 8, 5
#: A row's mask reaching this is its own (a fade reaches at most ``fade / (fade + 1)``; a whole
#: mask softened by one texel still reaches 1 inside).
FOUND_AT = 0.99
#: A face wider than this many times the UV side is averaged down to it before it is unwrapped.
ANTIALIAS_FROM = 1.5
#: The comparison's constant is at least this many times a run's typical residual (the median,
#: over its reference rows, of each row's median residual): a noisy or blocky clip's grain is not
#: a change of structure.
NOISE_GAIN = 2.0
#: Texels a frame is shifted by each way before its found regions count (see ``_frame_regions``).
REGISTRATION_SLACK = 4
#: ... and a region found stays only where its mean least dissimilarity reaches this (a card over
#: the mouth reads 0.71-0.75; the astronaut's face misregistered for three frames of
#: ``bench/perf.py``'s clip 0.39-0.52, the LivePortrait face's mesh moved 14-20 pixels 0.44-0.62).
REGISTERED_MEAN = 0.65
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
        min_mean: least mean dissimilarity over a region kept: an occluder is unlike the face
            all over, where a face's own change (a blocky, noisy or aliased patch; a mouth
            moving) has a few strong texels in a weaker region. On ``bench/robustness.py``'s
            footage, the regions that were no occluder read 0.68-0.86 (median 0.74-0.84) and
            covered 1-22% of the face (median 3-8%); a card and a microphone over the mouth,
            0.83-1.0 over 30-56%.
        min_outline: least share of the face's outline a region must reach: what covers a face
            comes from outside it (a hand, a microphone on its stand, a card); a change inside
            the face that reaches no edge is the face's own (lips rolled in, a frown).
        outline: width of the outline (texels).
        min_seen: a frame is looked at only where it shows at least this share of the texels its
            reference shows: the landmarker registers a face mostly outside the frame (or turned
            far away) too loosely for its texels to be compared (on ``bench/robustness.py``'s face
            sliding out of the frame, the frames it misread showed 24-50% of the mesh, against
            65-80% for whole faces, profiles included).
        highpass: sigma of the blur the detail is taken against.
        window: sigma of the window the structures are compared over.
        light_window: sigma of the window the brightness ratio (the light) is measured over.
        noise: the comparison's constant (squared log luminance): structure weaker than this in
            both images compares as the same.
        reference_rows: most frames of the track the reference median is taken over.
        temporal: frames each side of a frame that vote on its mask (majority).
        dilate: texels the mask is grown by (an occluder's edge blurs into the window).
        fade: frames over which a mask fades in before a run of frames found covered and out
            after it (a frame's own mask is whole, 1, inside; a faded one at most
            ``fade / (fade + 1)``). Off by default: the face under a fading mask is a blend of
            the edited and the unedited one, which ghosts (two mouths, looked at on the
            microphone clip of ``bench/occluders.py``), while the occluder's own coming and going
            hides the switch.
    """

    seed_at: float = 0.85
    grow_at: float = 0.6
    min_share: float = 0.08
    min_mean: float = 0.8
    min_outline: float = 0.03
    outline: int = 3
    min_seen: float = 0.6
    highpass: float = 2.0
    window: float = 5.0
    light_window: float = 7.0
    noise: float = 4e-4
    reference_rows: int = 48
    temporal: int = 2
    dilate: int = 2
    fade: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.grow_at <= self.seed_at:
            raise ConfigError(f"OccluderConfig: need 0 < grow_at <= seed_at, got {self.grow_at}, {self.seed_at}")
        if not 0 <= self.min_share < 1 or not 0 <= self.min_seen <= 1:
            raise ConfigError(f"OccluderConfig: min_share must be in [0, 1) and min_seen in [0, 1], got "
                              f"{self.min_share}, {self.min_seen}")
        if min(self.highpass, self.window, self.light_window, self.noise) <= 0:
            raise ConfigError("OccluderConfig: highpass, window, light_window and noise must be > 0")
        if self.reference_rows < 3 or min(self.temporal, self.dilate, self.fade) < 0:
            raise ConfigError(f"OccluderConfig: need reference_rows >= 3 and temporal, dilate, fade >= 0, got "
                              f"{self.reference_rows}, {self.temporal}, {self.dilate}, {self.fade}")


@functools.lru_cache(maxsize=4)
def _eye_texels(size: int) -> NDArray[np.bool_]:
    """``(S, S)`` the eyes' cores (read-only)."""
    out = triangle_texels(np.concatenate([REGIONS["eye_left"].core_triangles, REGIONS["eye_right"].core_triangles]), size)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=2)
def _moving_texels(size: int) -> NDArray[np.bool_]:
    """``(S, S)`` texels that change with expression (read-only): the eyes' cores
    (:func:`_eye_texels`) and the lips with :data:`MOUTH_RINGS` rings of skin around them."""
    out = _eye_texels(size) | triangle_texels(region_triangles(grow(LIPS, MOUTH_RINGS)), size)
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
        (on the mesh, facing the camera at least :data:`MIN_FACING`, inside the frame). A face
        over :data:`ANTIALIAS_FROM` times the texture's side is averaged down first.
    """
    lm = np.asarray(landmarks, np.float64)
    lo, hi = lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)
    scale = float((hi - lo).max()) / size
    if scale > ANTIALIAS_FROM:
        # a face many times the texture's size: sampled point by point, its pores alias into a
        # grain that changes with every sub-pixel move; averaged down to about the texture first
        h, w = image.shape[:2]
        x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in lo)
        x1, y1 = min(int(np.ceil(hi[0])) + 3, w), min(int(np.ceil(hi[1])) + 3, h)
        if x1 > x0 and y1 > y0:
            small = cv2.resize(image[y0:y1, x0:x1], (max(int(round((x1 - x0) / scale)), 1), max(int(round((y1 - y0) / scale)), 1)),
                               interpolation=cv2.INTER_AREA)
            fx, fy = (x1 - x0) / small.shape[1], (y1 - y0) / small.shape[0]
            lm = lm.copy()
            lm[:, 0] = (lm[:, 0] - x0 + 0.5) / fx - 0.5
            lm[:, 1] = (lm[:, 1] - y0 + 0.5) / fy - 0.5
            lm[:, 2:] /= fx
            image = small
    tex, weight = unwrap(image, lm, size)
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
    if both.all() or not both.any():
        return x
    # each texel takes the label of its nearest seen texel; OpenCV numbers those in raster order
    _, labels = cv2.distanceTransformWithLabels((~both).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    return x[both][labels - 1]


#: A frame's comparison with its reference (:func:`_structures`): the texels compared, the sum of
#: the two local energies, and their local product.
_Parts = tuple[NDArray[np.bool_], NDArray[np.float32], NDArray[np.float32]]


def dissimilarity(luma: NDArray[np.float32], seen: NDArray[np.bool_], ref: NDArray[np.float32],
                  config: OccluderConfig | None = None, noise: float | None = None) -> NDArray[np.float32]:
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
        noise: a larger constant for this clip (:data:`NOISE_GAIN` times its grain,
            :func:`_grain`); ``config.noise`` is the least.
    """
    c = config or OccluderConfig()
    return _dissimilar(_structures(luma, seen, ref, c), c, noise)


def _dissimilar(parts: _Parts, c: OccluderConfig, noise: float | None) -> NDArray[np.float32]:
    """:func:`dissimilarity` from a frame's :func:`_structures`."""
    both, total, cross = parts
    if not both.any():
        return np.zeros(both.shape, np.float32)
    k = c.noise if noise is None else max(noise, c.noise)
    d = 1.0 - (2.0 * cross + k) / (total + k)
    return np.where(both, d, 0.0).astype(np.float32)


def _grain(parts: _Parts) -> float:
    """The median, over the texels compared, of a frame's local residual energy against the
    reference (what :func:`dissimilarity` divides; 0 when nothing is compared), from its
    :func:`_structures`."""
    both, total, cross = parts
    return float(np.median((total - 2.0 * cross)[both])) if both.any() else 0.0


def _structures(luma: NDArray[np.float32], seen: NDArray[np.bool_], ref: NDArray[np.float32],
                c: OccluderConfig) -> _Parts:
    """The texels compared, the sum of the local energies of the frame's and the reference's
    high-passed log luminance (the frame's light taken off), and their local product."""
    r = np.nan_to_num(ref, nan=0.0)
    both = _usable(luma, seen) & np.isfinite(ref)
    if not both.any():
        z = np.zeros(luma.shape, np.float32)
        return both, z, z
    w = both.astype(np.float32)
    lf = np.log(np.where(both, luma, 0) + LOG_OFFSET).astype(np.float32)
    lr = np.log(np.where(both, np.maximum(r, 0), 0) + LOG_OFFSET).astype(np.float32)
    g = lf - _light(lf, lr, both, c.light_window)
    fd = (g - _mean_over(g, w, c.highpass)) * w
    rd = (lr - _mean_over(lr, w, c.highpass)) * w
    return both, _mean_over(fd * fd, w, c.window) + _mean_over(rd * rd, w, c.window), _mean_over(fd * rd, w, c.window)


def covered_regions(d: NDArray[np.float32], seen: NDArray[np.bool_],
                    config: OccluderConfig | None = None) -> NDArray[np.bool_]:
    """``(S, S)`` bool: the covered regions of one frame, from its :func:`dissimilarity` ``d``.

    Seeds (``d >= seed_at`` outside the eyes' and the mouth's cores) grown over ``d >= grow_at``;
    regions smaller than ``min_share`` of the seen texels, weaker than ``min_mean`` on average, or
    reaching less than ``min_outline``
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
    strength = ndimage.mean(d, labels, np.arange(n + 1)) if n else np.zeros(1)
    keep = (seeded & (sizes >= c.min_share * seen_n) & (np.asarray(strength) >= c.min_mean)
            & (touching >= c.min_outline * max(int(outline.sum()), 1)))
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
    into the texels the frame does not see, grown by ``dilate`` texels and softened by one, and
    faded in and out over ``fade`` frames around each run (:func:`found`: the frames found).

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
    if c.fade == 0 or not out.any():
        return out
    # fade in and out over the frames around a run: an occluder that comes or goes (or one the
    # reference half shows, found on some frames and not others) does not switch in one frame
    faded = out.copy()
    for k in range(1, c.fade + 1):
        w = 1.0 - k / (c.fade + 1)
        np.maximum(faded[k:], w * out[:-k], out=faded[k:])
        np.maximum(faded[:-k], w * out[k:], out=faded[:-k])
    return faded


def found(masks: NDArray[np.float32]) -> NDArray[np.bool_]:
    """``(N,)`` the rows of :func:`occluder_masks` found covered themselves (not only faded into
    from a neighbour): their mask is whole somewhere."""
    return masks.reshape(len(masks), -1).max(axis=1, initial=0.0) >= FOUND_AT


def _frame_regions(luma: NDArray[np.float32], seen: NDArray[np.bool_], ref: NDArray[np.float32],
                   c: OccluderConfig, grain: float, parts: _Parts | None = None,
                   states: list[NDArray[np.float32]] | None = None) -> NDArray[np.bool_]:
    """One frame's :func:`covered_regions`, each region kept only where the least dissimilarity
    of the frame shifted by up to :data:`REGISTRATION_SLACK` texels each way stays high over it
    (:data:`REGISTERED_MEAN`): a face the landmarker misregistered for a frame (its features a
    few texels off in UV space) matches its reference shifted, an occluder does not. ``parts``:
    the frame's :func:`_structures`, when already made. ``states``: other frames of the face
    (NaN where not to compare) whose least dissimilarity counts on the eyes' texels
    (:data:`STATE_ROWS`)."""
    least = _dissimilar(_structures(luma, seen, ref, c) if parts is None else parts, c, grain)
    if states:
        eyes = _eye_texels(luma.shape[0])
        for other in states:
            d = dissimilarity(luma, seen, other, c, grain)
            compared = eyes & np.isfinite(other) & seen
            least = np.where(compared, np.minimum(least, d), least)
    covered = covered_regions(least, seen, c)
    if not covered.any():
        return covered
    for dy in (-REGISTRATION_SLACK, 0, REGISTRATION_SLACK):
        for dx in (-REGISTRATION_SLACK, 0, REGISTRATION_SLACK):
            if dy == dx == 0:  # the frame as it is: ``least`` so far
                continue
            moved = np.roll(luma, (dy, dx), axis=(0, 1))
            d = dissimilarity(moved, np.roll(seen, (dy, dx), axis=(0, 1)), ref, c, grain)
            least = np.minimum(least, np.roll(d, (-dy, -dx), axis=(0, 1)))  # back onto the frame's own texels
    labels, n = ndimage.label(covered)
    kept = np.asarray(ndimage.mean(least, labels, np.arange(n + 1))) >= REGISTERED_MEAN
    kept[0] = False
    return kept[labels]


def _states_for(states: list[tuple[int, NDArray[np.float32]]], row: int) -> list[NDArray[np.float32]]:
    """Up to :data:`STATE_ROWS` of ``states`` (row, luma) at least :data:`STATE_GAP` rows from
    ``row``, spread over them."""
    far = [luma for r, luma in states if abs(r - row) >= STATE_GAP]
    if len(far) <= STATE_ROWS:
        return far
    return [far[int(k)] for k in np.unique(np.linspace(0, len(far) - 1, STATE_ROWS).round().astype(int))]


def track_masks(lumas: NDArray[np.float32], seen: NDArray[np.bool_], reference_rows: NDArray[np.integer],
                config: OccluderConfig | None = None) -> NDArray[np.float32]:
    """``(N, S, S)`` float32 occluder masks of a run of consecutive frames of one face.

    A row showing under ``min_seen`` of what the reference shows is not looked at; the
    comparison's constant follows the run's grain (:data:`NOISE_GAIN`). Two passes:
    the reference is the median of ``reference_rows``; it is taken again without the texels the
    first pass found covered, so that an occluder in some of those rows stops being
    part of what the face looks like (the masks of the second pass are returned). In the second
    pass the eyes are also compared with reference rows themselves (:data:`STATE_ROWS`).

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
    for second in (False, True):
        ref = reference(lumas[pick], use, c)
        shown = np.isfinite(ref)
        enough = c.min_seen * int(shown.sum())
        parts = {int(i): _structures(lumas[i], seen[i], ref, c) for i in pick}  # also compared below
        grain = NOISE_GAIN * float(np.median([_grain(parts[int(i)]) for i in pick]))
        # the eyes' other states: the reference frames, without what the first pass found
        states = [(int(i), np.where(use[k] & _usable(lumas[i], seen[i]), lumas[i], np.nan).astype(np.float32))
                  for k, i in enumerate(pick)] if second else []
        covered = np.stack([_frame_regions(lumas[i], seen[i], ref, c, grain, parts.get(i), _states_for(states, i))
                            if int((seen[i] & shown).sum()) >= enough else np.zeros_like(seen[i]) for i in range(n)])
        masks = occluder_masks(covered, seen, c)
        if not masks.any():
            break
        use = seen[pick] & ~((masks[pick] > 0) & found(masks[pick])[:, None, None])  # fades are no finding
    return masks
