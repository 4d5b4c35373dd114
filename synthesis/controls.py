"""The shipped named controls: deltas built from the canonical mesh's geometry, no footage.

Every expression control is a displacement of a few *driver* points (lids, lips, brows, irises)
spread smoothly over the face by harmonic interpolation over the open face mesh (which does not
cross the eye or mouth openings) between the drivers, fixed *anchor* points and the points
beyond the control's radius, which stay exactly still: neighbours of a moved point move with it
(moving only the driver points would fold the warp) and nothing far away moves at all. Left and
right are the subject's (see :mod:`synthesis.regions`). Pose controls turn the head by 1 degree
per unit strength.

Strength 1 is the control's full nominal effect; ``max_strength`` is how far it looks right when
rendered by warping (see each description, and FACTS.md "Editing by warping"). Limits that no
strength fixes: warping cannot make texture, so a smile on a closed mouth and an opened jaw show
stretched lip skin, not teeth or a mouth interior; a closed eye smears lashes over the eye (the
warp must be piecewise-affine at the lid line to close it at all, see
:mod:`synthesis.warpfield`); a turned head has no texture for the far cheek.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import diags
from scipy.sparse.linalg import spsolve

from synthesis import regions as rg
from synthesis.deltas import PIVOT_LANDMARKS, Delta
from tracking.mediapipe_results import BLENDSHAPE_NAMES
from tracking.observation import NUM_BLENDSHAPES, NUM_LANDMARKS

#: Gaze: iris shift per unit strength (inter-ocular units; about 18 degrees of eye rotation).
GAZE_SHIFT_IOD = 0.06
#: Vertical gaze: how far the upper and lower lids follow the iris (fractions of its shift, at
#: the lid's middle, 0 at the eye corners). Near the primary position the upper lid follows the
#: eye's vertical rotation almost one to one, the lower lid by about a third.
GAZE_LID_FOLLOW = (0.7, 0.3)
#: gaze_y's expected blendshape change per unit strength (``python bench/control_readouts.py
#: --controls gaze_y``: the mean over the two stills, rounded; see ``_PROVENANCE``).
GAZE_Y_READOUT = {"eyeLookUpLeft": 0.08, "eyeLookUpRight": 0.1, "eyeLookDownLeft": -0.04, "eyeLookDownRight": -0.04}
#: jaw_open's expected blendshape change per unit strength (``python bench/control_readouts.py
#: --controls jaw_open``, mean over the two stills: jawOpen 0.07 on the astronaut's parted mouth,
#: 0.34 on LivePortrait's closed one; measured again once a closed mouth could open).
JAW_READOUT = {"jawOpen": 0.2, "mouthLowerDownLeft": 0.33, "mouthLowerDownRight": 0.33}
#: Jaw: rotation per unit strength (degrees) and pivot depth behind the outline points 234/454.
JAW_DEG = 10.0
JAW_PIVOT_BEHIND_IOD = 0.1
#: Blink: (lower lid up, upper lid down) as fractions of the lid gap; the lids meet a little
#: above the lower lid, as in a real blink (meeting on the lower lid folds the outer corner).
BLINK_LIDS = (0.15, 0.85)
#: Blink: the outer eye corner moves out and down (inter-ocular units), as MediaPipe's own
#: landmarks do when an eye closes (LivePortrait clip: about 0.05 out, 0.05 down).
BLINK_CORNER_IOD = (0.03, -0.04)
#: Brow raise per unit strength (inter-ocular units).
BROW_RAISE_IOD = 0.08
#: A control's region weight is 1 where it moves a point by this fraction of its largest motion.
REGION_FULL = 0.2
#: Mouth corner motion per unit strength (inter-ocular units): smile (out, up, back), stretch.
SMILE_CORNER_IOD = (0.1, 0.08, -0.06)
SMILE_CHEEK_IOD = 0.025
STRETCH_CORNER_IOD = 0.07
_SMILE_CHEEKS = (205, 425, 50, 280, 187, 411, 123, 352, 147, 376)
_PROVENANCE = {
    "source": "deltaface named control, built from MediaPipe's canonical face mesh",
    "blendshapes": "measured: change per unit strength re-detected by MediaPipe after a hybrid warp of the "
    "astronaut still and LivePortrait d0 frame 0 (blinks warped without iris points), mean of the two, rounded",
}


def _points_iod() -> NDArray[np.float64]:
    pts = rg.canonical_points()
    return pts / rg.inter_ocular(pts)


def _blendshapes(changes: Mapping[str, float]) -> NDArray[np.float32]:
    out = np.zeros(NUM_BLENDSHAPES, np.float32)
    for name, value in changes.items():
        out[BLENDSHAPE_NAMES.index(name)] = value
    return out


def _spread(
    drivers: Mapping[int, NDArray[np.float64]], anchors: Iterable[int], radius: float, inner: float = 0.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Spread driver displacements smoothly over the face; returns ``(displacement, region)``.

    Harmonic interpolation over the open face mesh (graph Laplacian with conductance 1/length):
    drivers keep their displacement, anchors and every point farther than ``radius`` (geodesic,
    inter-ocular units) from the drivers (beyond ``inner``) stay exactly still, and every other
    point takes the weighted mean of its neighbours, so the field is as even as the constraints
    allow and never overshoots them. The region is :func:`_region` of the result.
    """
    n = NUM_LANDMARKS
    conductance = rg.mesh_graph().copy()
    conductance.data = 1.0 / conductance.data
    laplacian = (diags(np.asarray(conductance.sum(axis=1)).ravel()) - conductance).tocsr()
    env = rg.falloff(list(drivers), radius, inner=inner)
    fixed = env == 0.0
    fixed[list(anchors)] = True
    values = np.zeros((n, 3))
    for i, d in drivers.items():
        fixed[i] = True
        values[i] = d
    free = np.flatnonzero(~fixed)
    held = np.flatnonzero(fixed)
    if len(free):
        rhs = -(laplacian[free][:, held] @ values[held])
        values[free] = spsolve(laplacian[free][:, free].tocsc(), rhs).reshape(len(free), 3)
    return values, _region(values)


def _region(displacement: NDArray[np.float64]) -> NDArray[np.float64]:
    """Region weights of a displacement: a smoothstep of its magnitude, 1 from
    :data:`REGION_FULL` of the largest magnitude up, exactly 0 where nothing moves."""
    mag = np.linalg.norm(displacement, axis=1)
    return _smoothstep(mag / (REGION_FULL * max(float(mag.max()), 1e-12)))


def _lid_drivers(side: str, lower_up: float, upper_down: float) -> dict[int, NDArray[np.float64]]:
    """Displacements of one eye's lids and iris on the canonical face: the lower lid rises by
    ``lower_up`` of the lid gap and the upper lid drops by ``upper_down`` of it; points between
    (the iris) move by the linear blend at their height in the opening. They drive the spread over
    the skin around the eye; :func:`synthesis.deltas.apply_deltas` recomputes the eye's own points
    in the target's geometry (the delta's ``lids``)."""
    p = _points_iod()
    upper, lower, iris = rg.EYES[side]
    ux = np.argsort(p[list(upper), 0])
    lx = np.argsort(p[list(lower), 0])
    up_pts, lo_pts = p[list(upper)][ux], p[list(lower)][lx]
    drivers: dict[int, NDArray[np.float64]] = {}
    for i in (*upper[1:-1], *lower[1:-1], *iris):
        x = p[i, 0]
        y_up, y_lo = np.interp(x, up_pts[:, 0], up_pts[:, 1]), np.interp(x, lo_pts[:, 0], lo_pts[:, 1])
        gap = max(y_up - y_lo, 1e-6)
        f = 1.0 if i in upper else 0.0 if i in lower else float(np.clip((p[i, 1] - y_lo) / gap, 0.0, 1.0))
        k = lower_up * (1.0 - f) - upper_down * f
        drivers[i] = np.array([0.0, k * gap, 0.0])
    return drivers


def _blink(side: str) -> Delta:
    drivers = _lid_drivers(side, *BLINK_LIDS)
    upper = rg.EYES[side][0]
    outer, inner = (upper[-1], upper[0]) if side == "left" else (upper[0], upper[-1])
    sx = 1.0 if side == "left" else -1.0
    drivers[outer] = np.array([sx * BLINK_CORNER_IOD[0], BLINK_CORNER_IOD[1], 0.0])
    brow = rg.LEFT_BROW if side == "left" else rg.RIGHT_BROW
    disp, region = _spread(drivers, (inner, *brow), 0.3)
    other = "Right" if side == "left" else "Left"
    return Delta(
        name=f"blink_{side}",
        kind="expression",
        displacement=disp,
        region=region,
        blendshapes=_blendshapes({f"eyeBlink{side.capitalize()}": 0.25}),
        max_strength=1.0,
        description=(
            f"Closes the subject's {side} eye (image {'right' if side == 'left' else 'left'} of a frontal face): "
            "the upper lid comes down (85% of the lid gap) to meet the lower lid coming up (15%), the iris folds "
            "onto the lid line. Strength 1 closes the "
            "eye from whatever openness the frame has (gap-adapted); the lids never cross. Needs a warp that can be "
            "discontinuous at the lid line (piecewise-affine or hybrid), given the mesh points without this eye's "
            "iris points (folded onto the lid line, they make the warp's fold guard reopen the eye a little); "
            "lashes smear over the eye when closed. "
            f"MediaPipe's eyeBlink{side.capitalize()} refers to the subject's {side} eye "
            f"(eyeBlink{other} to the other)."
        ),
        provenance=_PROVENANCE,
        lids={side: BLINK_LIDS},
    )


def _squint() -> Delta:
    drivers = {**_lid_drivers("left", 0.3, 0.15), **_lid_drivers("right", 0.3, 0.15)}
    corners = [c for upper, _, _ in rg.EYES.values() for c in (upper[0], upper[-1])]
    anchors = (*corners, *rg.LEFT_BROW, *rg.RIGHT_BROW)
    disp, region = _spread(drivers, anchors, 0.3)
    return Delta(
        name="squint",
        kind="expression",
        displacement=disp,
        region=region,
        blendshapes=_blendshapes(
            {"eyeSquintLeft": 0.15, "eyeSquintRight": 0.15, "eyeBlinkLeft": 0.1, "eyeBlinkRight": 0.1}
        ),
        max_strength=1.0,
        description=(
            "Narrows both eyes: lower lids rise by 30% of the lid gap and upper lids drop by 15% at strength 1, "
            "the cheek under the eye rises with the lower lid. Gap-adapted like the blinks."
        ),
        provenance=_PROVENANCE,
        lids={"left": (0.3, 0.15), "right": (0.3, 0.15)},
    )


def _lip_area() -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.bool_]]:
    """Mesh points on or inside the outer lip line, their corner weight and which are upper lip.

    The corner weight is ``min(|x| / |x of the inner corner|, 1)^2``: 0 on the midline, 1 for
    every point from the inner corner outward, so the whole corner (outer and inner corner and
    the lip rings between them) moves as one piece. Upper lip: above the inner lips' midline."""
    p = _points_iod()
    outline = p[[*rg.LIPS_OUTER_UPPER, *rg.LIPS_OUTER_LOWER[::-1][1:-1]], :2]
    ids = np.flatnonzero(rg.distance_inside(outline, p[:468, :2]) > -1e-9)
    xc = abs(p[rg.MOUTH_CORNERS_INNER[1], 0])
    weight = np.minimum(np.abs(p[ids, 0]) / xc, 1.0) ** 2
    mid = np.zeros(len(ids))
    for chain in (rg.LIPS_INNER_UPPER, rg.LIPS_INNER_LOWER):
        line = p[list(chain)][np.argsort(p[list(chain), 0])]
        mid += np.interp(p[ids, 0], line[:, 0], line[:, 1]) / 2.0
    upper = p[ids, 1] > mid
    upper[np.isin(ids, rg.LIPS_INNER_UPPER)] = True
    upper[np.isin(ids, rg.LIPS_INNER_LOWER)] = False
    return ids, weight, upper


def _mouth_drivers(corner: tuple[float, float, float]) -> dict[int, NDArray[np.float64]]:
    """Every lip point moves like its side's corner times its corner weight (:func:`_lip_area`).
    The inner lips' upper and lower points at the same place along the chain get the same
    motion: they touch on a closed mouth, and moving them apart would fold the warp."""
    p = _points_iod()
    ids, weight, _ = _lip_area()
    drivers = {
        int(i): w * np.array([np.sign(p[i, 0]) * corner[0], corner[1], corner[2]]) for i, w in zip(ids, weight)
    }
    for a, b in zip(rg.LIPS_INNER_UPPER, rg.LIPS_INNER_LOWER):
        drivers[a] = drivers[b] = (drivers[a] + drivers[b]) / 2.0
    return drivers


def _mouth_anchors() -> tuple[int, ...]:
    return (*rg.NOSE, *rg.LEFT_EYE, *rg.RIGHT_EYE, *rg.FACE_OVAL)


def _smile() -> Delta:
    drivers = _mouth_drivers(SMILE_CORNER_IOD)
    p = _points_iod()
    for i in _SMILE_CHEEKS:
        drivers[i] = np.array([np.sign(p[i, 0]) * 0.3 * SMILE_CHEEK_IOD, SMILE_CHEEK_IOD, 0.0])
    disp, region = _spread(drivers, _mouth_anchors(), 0.45)
    return Delta(
        name="smile",
        kind="expression",
        displacement=disp,
        region=region,
        blendshapes=_blendshapes({"mouthSmileLeft": 0.2, "mouthSmileRight": 0.2}),
        max_strength=0.7,
        description=(
            "Mouth corners up and out (0.1 out, 0.08 up inter-ocular distances at strength 1), lips following, "
            "cheeks up slightly. On a closed mouth the lips are only stretched, no teeth appear: 0.7 holds up on "
            "the test faces, by 1.2 the lips thin visibly. Negative strength turns the corners down."
        ),
        provenance=_PROVENANCE,
    )


def _mouth_stretch() -> Delta:
    disp, region = _spread(_mouth_drivers((STRETCH_CORNER_IOD, 0.0, 0.0)), _mouth_anchors(), 0.4)
    return Delta(
        name="mouth_stretch",
        kind="expression",
        displacement=disp,
        region=region,
        blendshapes=_blendshapes({"mouthStretchLeft": 0.04, "mouthStretchRight": 0.04, "mouthPucker": -0.07}),
        max_strength=0.8,
        description=(
            "Mouth corners straight out (0.07 inter-ocular distances each at strength 1), lips following. "
            "Negative strength narrows the mouth."
        ),
        provenance=_PROVENANCE,
    )


def _smoothstep(u: NDArray[np.float64]) -> NDArray[np.float64]:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _jaw_open() -> Delta:
    p = _points_iod()
    # how much each point follows the jaw: lower lip, chin and jaw 1, upper lip 0, the corner
    # (as one piece) half, the upper face 0, interpolated between them over the mesh
    ids, weight, upper = _lip_area()
    follow_lip = np.where(upper, 0.5 * weight**2, 1.0 - 0.5 * weight**2)
    drivers = {int(i): np.full(3, f) for i, f in zip(ids, follow_lip)}
    drivers.update({i: np.ones(3) for i in rg.JAW})
    corner_y = p[rg.MOUTH_CORNERS_OUTER[1], 1]
    upper_face = [i for i in range(468) if p[i, 1] > corner_y + 0.3]
    follow, _ = _spread(drivers, (*rg.NOSE, *upper_face, *range(468, NUM_LANDMARKS)), radius=10.0)
    w = np.clip(follow[:, 0], 0.0, 1.0)
    piv = p[list(PIVOT_LANDMARKS)].mean(axis=0) - np.array([0.0, 0.0, JAW_PIVOT_BEHIND_IOD])
    a = np.radians(JAW_DEG)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
    rel = p - piv
    disp = (rel @ rot.T - rel) * w[:, None]
    return Delta(
        name="jaw_open",
        kind="expression",
        displacement=disp,
        region=_region(disp),
        blendshapes=_blendshapes(JAW_READOUT),
        max_strength=0.4,
        description=(
            f"Opens the jaw by turning the chin, lower lip and jaw {JAW_DEG:g} degrees per unit strength about a "
            "pivot near the ears (behind the outline points 234/454); the upper lip stays. Warping has no teeth or "
            "mouth interior to show: the gap between the lips is stretched lip texture, so keep it small, or let "
            "deltaface borrow the mouth interior from a frame of the clip where the mouth is open (texture, on by "
            "default). On a closed mouth the lips part too: the warp maps the opened gap onto the lip line."
        ),
        provenance=_PROVENANCE,
    )


def _brow_raise() -> Delta:
    drivers = {i: np.array([0.0, BROW_RAISE_IOD, 0.0]) for i in (*rg.LEFT_BROW, *rg.RIGHT_BROW)}
    top = tuple(i for i in rg.FACE_OVAL if _points_iod()[i, 1] > _points_iod()[rg.LEFT_BROW[0], 1] + 0.3)
    disp, region = _spread(drivers, (*rg.LEFT_EYE, *rg.RIGHT_EYE, *top), 0.4)
    return Delta(
        name="brow_raise",
        kind="expression",
        displacement=disp,
        region=region,
        blendshapes=_blendshapes({"browInnerUp": 0.3, "browOuterUpLeft": 0.27, "browOuterUpRight": 0.27}),
        max_strength=1.0,
        description=(
            f"Raises both brows by {BROW_RAISE_IOD:g} inter-ocular distances at strength 1; the forehead follows "
            "less, the lids stay. Negative strength lowers them (a frown without its wrinkles)."
        ),
        provenance=_PROVENANCE,
    )


def _gaze(axis: int) -> Delta:
    shift = np.zeros(3)
    shift[axis] = GAZE_SHIFT_IOD
    drivers = {i: shift for i in (*rg.LEFT_IRIS, *rg.RIGHT_IRIS)}
    if axis == 0:
        disp = np.zeros((NUM_LANDMARKS, 3))
        region = np.zeros(NUM_LANDMARKS)
        for i, d in drivers.items():
            disp[i] = d
            region[i] = 1.0
        name, words = "gaze_x", "toward the subject's left (image right)"
        bs = {"eyeLookOutLeft": 0.15, "eyeLookInRight": 0.13, "eyeLookInLeft": -0.05, "eyeLookOutRight": -0.03}
    else:
        # The lids follow a vertical gaze (the upper one most, hinged at the eye corners); an iris
        # moved alone reads as almost no change on MediaPipe's eyeLookUp/Down, whose model reads
        # the lids as much as the iris, and looks like a stare.
        p = _points_iod()
        corners = []
        for upper, lower, _ in rg.EYES.values():
            corners += [upper[0], upper[-1]]
            for lid, follow in ((upper, GAZE_LID_FOLLOW[0]), (lower, GAZE_LID_FOLLOW[1])):
                xs = p[list(lid), 0]
                x0, x1 = float(xs.min()), float(xs.max())
                for i in lid[1:-1]:
                    drivers[i] = shift * follow * float(np.sin(np.pi * (p[i, 0] - x0) / (x1 - x0)))
        disp, region = _spread(drivers, (*corners, *rg.LEFT_BROW, *rg.RIGHT_BROW), 0.3)
        name, words = "gaze_y", "up"
        bs = GAZE_Y_READOUT
    return Delta(
        name=name,
        kind="expression",
        displacement=disp,
        region=region,
        blendshapes=_blendshapes(bs),
        max_strength=1.0,
        description=(
            f"Moves both irises {words} by {GAZE_SHIFT_IOD:g} inter-ocular distances (about 18 degrees of eye "
            "rotation) at strength 1; "
            + ("the lids stay. Past 1 the iris runs into the eye corner" if axis == 0 else
               f"the upper lids follow by {GAZE_LID_FOLLOW[0]:g} of that and the lower lids by {GAZE_LID_FOLLOW[1]:g} "
               "(hinged at the eye corners), as lids follow a real eye. Past 1 the iris runs under the lid")
            + "; negative strength looks the other way."
        ),
        provenance=_PROVENANCE,
    )


def _head(axis: int) -> Delta:
    name = ("head_yaw", "head_pitch", "head_roll")[axis]
    pose = np.zeros(3)
    pose[axis] = 1.0
    limit = (10.0, 8.0, 10.0)[axis]
    words = (
        "Turns the head toward image right (negative: left)",
        "Tilts the head up (negative: down)",
        "Rolls the head clockwise in the image (negative: counter-clockwise)",
    )[axis]
    return Delta(
        name=name,
        kind="pose",
        displacement=np.zeros((NUM_LANDMARKS, 3)),
        pose=pose,
        region=np.zeros(NUM_LANDMARKS),
        max_strength=limit,
        description=(
            f"{words} by 1 degree per unit strength, about a pivot at the depth of the face outline. "
            f"Looks natural up to about {limit:g} degrees (FACTS.md: 10 of yaw and 8 of pitch; at 15 of yaw the far "
            "cheek ripples, at 25 the face slides over ears and hair that cannot move)."
            + (" Roll is an in-plane turn: measured limits are not yet known." if axis == 2 else "")
        ),
        provenance=_PROVENANCE,
    )


@functools.lru_cache(maxsize=1)
def _controls() -> dict[str, Delta]:
    built = [
        _blink("left"), _blink("right"), _squint(), _smile(), _mouth_stretch(), _jaw_open(),
        _brow_raise(), _gaze(0), _gaze(1), _head(0), _head(1), _head(2),
    ]  # fmt: skip
    return {d.name: d for d in built}


def named_controls() -> dict[str, Delta]:
    """All shipped controls by name (a new dict; the deltas are immutable)."""
    return dict(_controls())


def control(name: str) -> Delta:
    """One shipped control by name.

    Raises:
        KeyError: no control of that name (the message lists the names).
    """
    controls = _controls()
    if name not in controls:
        raise KeyError(f"no control named {name!r}; known: {', '.join(controls)}")
    return controls[name]


def listing() -> list[tuple[str, float, str]]:
    """``(name, max_strength, description)`` of every control, for help texts and the README."""
    return [(d.name, d.max_strength, d.description) for d in _controls().values()]
