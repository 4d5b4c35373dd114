"""Learning a delta from example pairs: the Delta-GAN-Encoder idea in landmark code space.

Given one or a few ``(before, after)`` observations of any face (real frames, CGI renders) that
differ by the change wanted (a wink, a smile), each pair is inverted on its own: the *before*
face is canonicalized by a pose fit to the canonical mesh, the *after* face is fitted to the
before face's own canonical shape by an iteratively re-weighted similarity fit that down-weights
the points that moved (so the fit rests on whatever the change left still, not on a fixed list),
and their canonical difference is divided by the before face's inter-ocular distance. The first
person's identity cancels in that difference; what is left is the change, in units that transfer
to any face. Pairs are averaged; the region is where the mean displacement stands above the
pairs' background motion (smoothed over the mesh), and the displacement is cut to it, so a blink cut
from footage where the mouth also moved does not carry the mouth along (FACTS.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from synthesis.codespace import fit_pose
from synthesis.deltas import Delta
from synthesis.regions import canonical_points, distance_matrix, inter_ocular, rigid_weights
from tracking.errors import InputError
from tracking.observation import NUM_BLENDSHAPES, NUM_LANDMARKS, NUM_MESH_LANDMARKS
from tracking.pose import euler_from_matrix

#: Re-weighting rounds of the after-to-before fit.
ROBUST_ITERATIONS = 6
#: Cauchy scale of the re-weighting, in robust standard deviations of the residual.
ROBUST_SCALE = 2.0
#: Share of the fit weight spread evenly over all mesh points on top of the rigid prior, so the
#: fit can rest on any point the change left still.
UNIFORM_SHARE = 0.3
#: A point belongs to the region once its (smoothed) motion exceeds this many times the
#: background (the median motion of the mesh points: landmark noise plus the small whole-face
#: shape changes MediaPipe makes with any expression, 0.02-0.05 inter-ocular distances between
#: frames of the LivePortrait clip) ...
BACKGROUND_FACTOR = 2.0
#: ... and at least this much (inter-ocular units).
MIN_MOTION_IOD = 0.01
#: Smoothing (Gaussian sigma) of motion magnitudes over the mesh, and how far the region is
#: grown around the points above threshold (raised cosine), in inter-ocular units.
SMOOTH_SIGMA_IOD = 0.04
REGION_GROW_IOD = 0.12
#: Mean rotation change (degrees) from which a learned delta counts as turning the head.
POSE_MIN_DEG = 2.0


@dataclass(frozen=True)
class LearnReport:
    """How a delta was learned and how consistent its pairs were.

    Attributes:
        pairs: number of pairs.
        cosine: per pair, cosine similarity of its displacement to the mean of the other pairs,
            where any pair moved (1 = same change, 0 = unrelated changes; 1.0 for a single pair).
        relative_spread: root mean square deviation of the pairs from their mean where any pair
            moved, over the mean's norm (0 = identical; 0.0 for a single pair).
        pose_changes: per pair ``(dyaw, dpitch, droll)`` degrees.
        background_iod: median motion of the mesh points under the mean displacement (inter-ocular
            units): what the region threshold is measured against.
        region_points: points with region weight above 0.5.
        fit_rms: per pair, weighted RMS residual of the after-to-before fit on the points it
            kept (inter-ocular units): how still the "still" part was.
    """

    pairs: int
    cosine: tuple[float, ...]
    relative_spread: float
    pose_changes: tuple[tuple[float, float, float], ...]
    background_iod: float
    region_points: int
    fit_rms: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class PairChange:
    """The change of one pair in canonical space.

    Attributes:
        displacement: ``(478, 3)`` float64 after minus before, canonical axes, inter-ocular units.
        pose_change: ``(3,)`` float64 ``(dyaw, dpitch, droll)`` degrees.
        weights: ``(478,)`` float64 final fit weights (small where the change moved points).
        fit_rms: weighted RMS residual of the fit, inter-ocular units.
    """

    displacement: NDArray[np.float64]
    pose_change: NDArray[np.float64]
    weights: NDArray[np.float64]
    fit_rms: float


def _check(landmarks: ArrayLike, what: str) -> NDArray[np.float64]:
    arr = np.asarray(landmarks, dtype=np.float64)
    if arr.shape != (NUM_LANDMARKS, 3) or not np.isfinite(arr).all():
        raise InputError(f"{what}: landmarks must be finite (478, 3) pixels, got {arr.shape}")
    return arr


def pair_change(before: ArrayLike, after: ArrayLike, what: str = "pair") -> PairChange:
    """Canonical change between two observations of one face (see the module doc).

    Args:
        before, after: ``(478, 3)`` pixels (each in its own image; sizes may differ).
        what: name for error messages.

    Returns:
        The change.
    """
    b = _check(before, f"{what} (before)")
    a = _check(after, f"{what} (after)")
    prior = rigid_weights()
    pose_b = fit_pose(b, canonical_points(), prior)
    canon_b = pose_b.to_canonical(b)
    iod = inter_ocular(canon_b)
    base = prior / prior.sum() * (1.0 - UNIFORM_SHARE)
    base[:NUM_MESH_LANDMARKS] += UNIFORM_SHARE / NUM_MESH_LANDMARKS
    w = base.copy()
    for _ in range(ROBUST_ITERATIONS):
        pose_a = fit_pose(a, canon_b, w)
        resid = np.linalg.norm(pose_a.to_canonical(a) - canon_b, axis=1)
        mesh = resid[:NUM_MESH_LANDMARKS]
        sigma = max(1.4826 * float(np.median(mesh)), 1e-4 * iod)
        w = base / (1.0 + (resid / (ROBUST_SCALE * sigma)) ** 2)
    pose_a = fit_pose(a, canon_b, w)
    canon_a = pose_a.to_canonical(a)
    resid = np.linalg.norm(canon_a - canon_b, axis=1)
    fit_rms = float(np.sqrt((w * resid**2).sum() / w.sum())) / iod
    change = np.subtract(euler_from_matrix(pose_a.rotation), euler_from_matrix(pose_b.rotation))
    change = (change + 180.0) % 360.0 - 180.0
    return PairChange((canon_a - canon_b) / iod, change, w, fit_rms)


@functools.lru_cache(maxsize=1)
def _all_distances() -> NDArray[np.float64]:
    d = distance_matrix(list(range(NUM_LANDMARKS)))
    d.flags.writeable = False
    return d


def region_from_motion(motion: NDArray[np.floating], background: float) -> NDArray[np.float64]:
    """Smooth region weights from per-point motion magnitudes.

    The magnitudes are smoothed over the mesh (Gaussian of geodesic distance), points above
    ``max(BACKGROUND_FACTOR * background, MIN_MOTION_IOD)`` get weight rising to 1 at twice that, and the
    region is grown around them by a raised cosine of :data:`REGION_GROW_IOD`.

    Args:
        motion: ``(478,)`` magnitudes, inter-ocular units.
        background: typical motion of unchanged points, same units.

    Returns:
        ``(478,)`` float64 in [0, 1].
    """
    dist = _all_distances()
    k = np.exp(-0.5 * (dist / SMOOTH_SIGMA_IOD) ** 2)
    smooth = (k @ np.asarray(motion, dtype=np.float64)) / k.sum(axis=1)
    tau = max(BACKGROUND_FACTOR * background, MIN_MOTION_IOD)
    core = np.clip(smooth / tau - 1.0, 0.0, 1.0)
    core = core * core * (3.0 - 2.0 * core)
    grow = 0.5 * (1.0 + np.cos(np.pi * np.clip(dist / REGION_GROW_IOD, 0.0, 1.0)))
    return np.clip((grow * core[None, :]).max(axis=1), 0.0, 1.0)


def learn_delta(
    pairs: Sequence[tuple[ArrayLike, ArrayLike]],
    name: str,
    *,
    blendshape_pairs: Sequence[tuple[ArrayLike, ArrayLike]] | None = None,
    description: str = "",
    max_strength: float = 1.0,
    mask: ArrayLike | None = None,
    source: str = "example pairs",
) -> tuple[Delta, LearnReport]:
    """Learn a delta from ``(before, after)`` landmark pairs of any faces.

    Args:
        pairs: ``(before, after)`` ``(478, 3)`` pixel landmarks, one face per pair, each pair one
            person (different pairs may be different people).
        name: the delta's name.
        blendshape_pairs: optional ``(before, after)`` ``(52,)`` scores, one per pair; their mean
            change becomes the delta's expected blendshape change.
        description: what the change is.
        max_strength: how far it is known to look right.
        mask: optional ``(478,)`` weights in [0, 1] multiplied into the learned region (to keep
            only the eyes of a blink pair that also moved the mouth, say).
        source: words for the provenance (e.g. the file names of the frames).

    Returns:
        ``(delta, report)``. The delta's kind is ``"expression"``, or ``"mixed"``/``"pose"`` when
        the pairs turned the head by :data:`POSE_MIN_DEG` or more on average.

    Raises:
        InputError: no pairs, malformed landmarks, or blendshapes not one per pair.
    """
    if not pairs:
        raise InputError(f"learn_delta {name}: no example pairs given")
    changes = [pair_change(b, a, f"learn_delta {name}: pair {k}") for k, (b, a) in enumerate(pairs)]
    disp = np.stack([c.displacement for c in changes])
    mean = disp.mean(axis=0)
    pose = np.mean([c.pose_change for c in changes], axis=0)
    motion = np.linalg.norm(mean, axis=1)
    background = float(np.median(motion[:NUM_MESH_LANDMARKS]))
    region = region_from_motion(motion, background)
    if mask is not None:
        m = np.asarray(mask, dtype=np.float64)
        if m.shape != (NUM_LANDMARKS,):
            raise InputError(f"learn_delta {name}: mask must be (478,), got {m.shape}")
        region = region * np.clip(m, 0.0, 1.0)
    bs = np.zeros(NUM_BLENDSHAPES, np.float32)
    if blendshape_pairs is not None:
        if len(blendshape_pairs) != len(pairs):
            raise InputError(f"learn_delta {name}: {len(blendshape_pairs)} blendshape pairs for {len(pairs)} pairs")
        bs = np.mean([np.asarray(a, np.float32) - np.asarray(b, np.float32) for b, a in blendshape_pairs], axis=0)

    r = region[:, None]
    # consistency is measured where any pair moved (the union of the pairs' own regions), so a
    # pair whose change lies outside the mean's region still counts against it
    magnitudes = np.linalg.norm(disp, axis=2)
    union = np.max([region_from_motion(m, float(np.median(m[:NUM_MESH_LANDMARKS]))) for m in magnitudes], axis=0)
    flat = (disp * union[None, :, None]).reshape(len(disp), -1)
    if len(disp) == 1:
        cosine: tuple[float, ...] = (1.0,)
    else:  # each pair against the mean of the others (leave-one-out)
        others = (flat.sum(axis=0)[None] - flat) / (len(disp) - 1)
        norms = np.linalg.norm(flat, axis=1) * np.linalg.norm(others, axis=1)
        cosine = tuple(float(v) for v in (flat * others).sum(axis=1) / np.maximum(norms, 1e-12))
    mean_flat = flat.mean(axis=0)
    deviation = float(np.sqrt(np.mean(np.sum((flat - mean_flat) ** 2, axis=1))))
    spread = deviation / max(float(np.linalg.norm(mean_flat)), 1e-12)
    turned = float(np.abs(pose).max()) >= POSE_MIN_DEG
    moved = float(region.max()) > 0.5
    kind = "mixed" if turned and moved else "pose" if turned else "expression"
    report = LearnReport(
        pairs=len(pairs),
        cosine=cosine,
        relative_spread=spread,
        pose_changes=tuple(tuple(float(v) for v in c.pose_change) for c in changes),  # type: ignore[misc]
        background_iod=background,
        region_points=int((region > 0.5).sum()),
        fit_rms=tuple(c.fit_rms for c in changes),
    )
    delta = Delta(
        name=name,
        kind=kind,
        displacement=mean * r,
        pose=pose if turned else np.zeros(3),
        region=region,
        blendshapes=bs,
        max_strength=max_strength,
        description=description or f"Learned from {len(pairs)} example pair(s).",
        provenance={
            "source": f"learned from {source}",
            "pairs": len(pairs),
            "min_cosine": round(min(cosine), 4),
            "relative_spread": round(spread, 4),
            "background_iod": round(background, 5),
        },
    )
    return delta, report
