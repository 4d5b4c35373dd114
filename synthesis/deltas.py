"""Deltas: changes in code space that carry no identity, how they are applied, and their files.

A :class:`Delta` holds, per unit of strength, a canonical-space displacement of the 478 points
in units of inter-ocular distance (so it transfers to any face size), a head rotation change in
degrees, a region mask, and the blendshape change it should cause. :func:`apply_deltas` edits one
frame's :class:`~synthesis.codespace.FaceCode`; the track's
:class:`~synthesis.codespace.Identity` is an input that is only read, so an edit cannot change it.

A displacement is carried onto a face by the face's own inter-ocular distance. Per-triangle
deformation transfer (Sumner and Popovic 2004) over the canonical mesh was measured against that
and not kept: moving the named controls and deltas learned on the LivePortrait clip onto the
astronaut and onto that clip's own identity, it changed the moved points by a median 13-80% of
their motion and moved points outside the delta's region by up to 1-10% of the inter-ocular
distance (its least-squares solve spreads change everywhere), and for a learned delta it needs
the first person's neutral shape as its source, which a delta must not carry. On the same person
it does not even reproduce the delta, where scaling does exactly.

Delta files (format ``deltaface-delta``, version 1)
---------------------------------------------------
A delta file is one UTF-8 JSON object, at most 1 MiB, no pickle and nothing executable::

    {
      "format": "deltaface-delta",          # required, exactly this
      "version": 1,                         # required; files of a newer version are refused
      "name": "blink_left",                 # 1-64 characters: letters, digits, "_", "-", "."
      "kind": "expression",                 # "expression", "pose" or "mixed"
      "description": "...",                 # free text, one paragraph
      "units": "...",                       # informative: the units below, in words
      "pose": {"yaw": 0.0, "pitch": 0.0, "roll": 0.0},   # degrees per unit strength
      "max_strength": 1.0,                  # |strength| up to which the edit looks right (> 0)
      "region": [478 numbers in [0, 1]],    # where the delta acts (1 = fully)
      "displacement": [[dx, dy, dz] x 478], # per unit strength, inter-ocular units, canonical
                                            # axes: x subject's left, y up, z toward the viewer
      "blendshapes": {"eyeBlinkLeft": 0.55, ...},  # expected score change per unit strength;
                                                   # names from MediaPipe's 52, absent = 0
      "lids": {"left": [0.0, 1.0]},         # optional: per eye (subject's side), the fraction
                                            # of the lid gap by which the lower lid rises and
                                            # the upper lid drops per unit strength
      "provenance": {"source": "...", ...}  # free key -> string/number/bool: where it came from
    }

Numbers are written rounded to 1e-5 (displacements are fractions of the inter-ocular distance,
so that is 0.001% of it). Points 0-467 are MediaPipe's face mesh, 468-477 the iris points.

Eyes get two rules of their own, because a fixed displacement cut from one eye does not fit
another eye's opening:

- ``lids`` makes a delta close (or open) an eye in the *target's* geometry: the lid points and the
  iris points of that eye move by a per-column affine map of canonical height that takes the
  lower lid up by ``lower_up * strength`` of the local lid gap and the upper lid down by
  ``upper_down * strength`` of it (points between keep their order); the stored displacement of
  those points is ignored, and the rest of the stored displacement (the skin around the eye) is
  scaled by the eye's current lid gap over the canonical mesh's. So ``blink_left`` at strength 1
  closes any left eye exactly, from whatever openness the frame has. The sums over the deltas
  applied together are limited to ``lower_up + upper_down <= 1``: lids never cross.
- Any other move of an iris point is shortened so that the point stays inside its eye opening
  (at least ``synthesis.regions.IRIS_MARGIN`` of the lid gap from the lids, or no closer than it was); a point that
  starts outside the opening (hidden under a lid) stays. A gaze change thus slides the visible
  iris and never pushes a landmark through a lid, which would fold the warp.

Whatever the deltas, an upper lid point never ends below the lower lid line
(:func:`synthesis.regions.clamp_lids`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from synthesis.codespace import FLIP, FaceCode, Identity, Pose, invert_single
from synthesis.regions import (
    EYE_PAIRS,
    EYES,
    canonical_gap,
    clamp_lids,
    inter_ocular,
    keep_iris_inside,
    lid_gaps,
    lid_offsets,
)
from tracking.atomicfile import write_atomically
from tracking.errors import InputError
from tracking.mediapipe_results import BLENDSHAPE_NAMES
from tracking.observation import NUM_BLENDSHAPES, NUM_LANDMARKS
from tracking.pose import euler_from_matrix, matrix_from_euler, similarity_fit

FORMAT = "deltaface-delta"
VERSION = 1
KINDS = ("expression", "pose", "mixed")
#: Largest delta file read (bytes).
MAX_FILE_BYTES = 1 << 20
#: Largest displacement (inter-ocular units per unit strength) and rotation (degrees) accepted.
MAX_DISPLACEMENT_IOD = 5.0
MAX_ROTATION_DEG = 90.0
#: Decimal places numbers are written with.
FILE_DECIMALS = 5
#: Landmarks of the face outline whose midpoint is the pivot of pose deltas (FACTS.md: rotating
#: about the landmark centroid swings the outline against the nose, ears and hair).
PIVOT_LANDMARKS = (234, 454)
#: Upper bound on the lid-gap ratio that scales the skin around an eye under a ``lids`` delta.
GAP_RATIO_MAX = 4.0
#: A point counts as outside a delta's region below this region weight.
OUTSIDE_REGION = 0.02
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_BLENDSHAPE_INDEX = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}


def _frozen_array(value: Any, shape: tuple[int, ...], dtype: type, what: str) -> NDArray[Any]:
    arr = np.array(value, dtype=dtype)
    if arr.shape != shape:
        raise ValueError(f"{what} must be {shape}, got {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinity")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Delta:
    """A named change in code space, per unit of strength.

    Attributes:
        name: identifier (letters, digits, ``_ - .``; at most 64).
        kind: ``"expression"`` (displacement only), ``"pose"`` (rotation only) or ``"mixed"``.
        displacement: ``(478, 3)`` float64 canonical-space displacement in inter-ocular units
            (x subject's left, y up, z toward the viewer); zero outside ``region``.
        pose: ``(3,)`` float64 ``(dyaw, dpitch, droll)`` degrees (signs as in
            :mod:`tracking.pose`: yaw toward image right, pitch up, roll clockwise).
        region: ``(478,)`` float64 in [0, 1], where the delta acts.
        blendshapes: ``(52,)`` float32 expected change of each blendshape score (a readout).
        max_strength: ``|strength|`` up to which the edit looks right (> 0).
        description: what it does and its limits.
        provenance: where it came from (``"source"``, pair count, consistency ...); values are
            str, int, float or bool.
        lids: per eye (``"left"``/``"right"``, the subject's), ``(lower_up, upper_down)``:
            fractions of the lid gap per unit strength, applied in the target's geometry (see
            the module doc); each in [-1, 1]. Empty for most deltas.
    """

    name: str
    kind: str
    displacement: NDArray[np.float64]
    pose: NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    region: NDArray[np.float64] = field(default_factory=lambda: np.zeros(NUM_LANDMARKS))
    blendshapes: NDArray[np.float32] = field(default_factory=lambda: np.zeros(NUM_BLENDSHAPES, np.float32))
    max_strength: float = 1.0
    description: str = ""
    provenance: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    lids: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(f"delta name {self.name!r} must be 1-64 letters, digits, '_', '-' or '.'")
        if self.kind not in KINDS:
            raise ValueError(f"delta {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        disp = _frozen_array(self.displacement, (NUM_LANDMARKS, 3), np.float64, f"delta {self.name}: displacement")
        pose = _frozen_array(self.pose, (3,), np.float64, f"delta {self.name}: pose")
        region = _frozen_array(self.region, (NUM_LANDMARKS,), np.float64, f"delta {self.name}: region")
        bs = _frozen_array(self.blendshapes, (NUM_BLENDSHAPES,), np.float32, f"delta {self.name}: blendshapes")
        lids = {str(k): (float(v[0]), float(v[1])) for k, v in dict(self.lids).items()}
        if np.abs(disp).max(initial=0.0) > MAX_DISPLACEMENT_IOD:
            raise ValueError(f"delta {self.name}: displacement above {MAX_DISPLACEMENT_IOD} inter-ocular distances")
        if np.abs(pose).max() > MAX_ROTATION_DEG:
            raise ValueError(f"delta {self.name}: rotation above {MAX_ROTATION_DEG} degrees")
        if (region < 0).any() or (region > 1).any():
            raise ValueError(f"delta {self.name}: region weights must be in [0, 1]")
        if not (math.isfinite(self.max_strength) and self.max_strength > 0):
            raise ValueError(f"delta {self.name}: max_strength must be > 0, got {self.max_strength}")
        for side, fractions in lids.items():
            if side not in EYES or not all(math.isfinite(f) and -1.0 <= f <= 1.0 for f in fractions):
                raise ValueError(f"delta {self.name}: lids must map 'left'/'right' to two fractions in [-1, 1]")
        for key, value in self.provenance.items():
            if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"delta {self.name}: provenance must map str to str/int/float/bool")
        object.__setattr__(self, "displacement", disp)
        object.__setattr__(self, "pose", pose)
        object.__setattr__(self, "region", region)
        object.__setattr__(self, "blendshapes", bs)
        object.__setattr__(self, "lids", lids)
        object.__setattr__(self, "provenance", dict(self.provenance))
        object.__setattr__(self, "max_strength", float(self.max_strength))


def pivot(identity: Identity) -> NDArray[np.float64]:
    """``(3,)`` canonical pivot of pose deltas: the midpoint of the outline landmarks 234/454,
    at the depth of the face outline (about 1.2-1.6 inter-ocular distances behind the nose)."""
    return identity.shape[list(PIVOT_LANDMARKS)].mean(axis=0)


def rotate_pose(pose: Pose, identity: Identity, dyaw: float, dpitch: float, droll: float) -> Pose:
    """Turn a head pose by Euler-angle increments about the :func:`pivot`.

    The new rotation is ``matrix_from_euler(yaw + dyaw, pitch + dpitch, roll + droll)``, so
    :func:`tracking.pose.euler_from_matrix` reads exactly the requested change back (yaw turns
    about the camera's vertical, pitch nods about the head's own ear-to-ear axis, roll about its
    own nose axis). The translation is changed so that the pivot stays where it was in the image.

    Args:
        pose: the frame's pose.
        identity: the track's identity (for the pivot).
        dyaw, dpitch, droll: degrees.

    Returns:
        The new pose (same scale).
    """
    if dyaw == 0 and dpitch == 0 and droll == 0:
        return pose
    yaw, pitch, roll = euler_from_matrix(pose.rotation)
    new_rot = matrix_from_euler(yaw + dyaw, pitch + dpitch, roll + droll)
    p = pivot(identity)
    t = pose.translation + pose.scale * FLIP @ (pose.rotation - new_rot) @ p
    return Pose(pose.scale, new_rot, t)


def apply_deltas(
    code: FaceCode, identity: Identity, deltas: Sequence[tuple[Delta, float]]
) -> FaceCode:
    """Apply several deltas at once to one frame's code.

    Expression displacements add (each times its strength and the identity's inter-ocular
    distance), the eye rules of the module doc act (``lids``; iris points kept inside the eye
    opening; upper lids clamped above the lower lid line), the rotations add as Euler increments
    (:func:`rotate_pose`), and the blendshape readout moves by the expected changes (clipped to
    [0, 1]). The identity is only read.

    Args:
        code: the frame's code.
        identity: the track's identity.
        deltas: ``(delta, strength)`` pairs; strength 0 leaves a delta out.

    Returns:
        The edited code; ``code`` itself when every strength is 0.
    """
    active = [(d, float(s)) for d, s in deltas if s != 0.0]
    if not active:
        return code
    iod = identity.inter_ocular
    shape = identity.shape + code.expression
    offset = np.zeros((NUM_LANDMARKS, 3))
    rot = np.zeros(3)
    bs = code.blendshapes.astype(np.float64)
    lids = {side: np.zeros(2) for side in EYES}
    for delta, strength in active:
        if not math.isfinite(strength):
            raise ValueError(f"delta {delta.name}: strength must be finite, got {strength}")
        disp = delta.displacement
        if delta.lids:
            disp = disp.copy()
            ratios = []
            for side, fractions in delta.lids.items():
                upper, lower, iris = EYES[side]
                disp[[*upper[1:-1], *lower[1:-1], *iris]] = 0.0
                lids[side] += strength * np.asarray(fractions)
                gap = float(np.mean(lid_gaps(shape, EYE_PAIRS[side]))) / iod
                ratios.append(gap / canonical_gap(side))
            disp *= float(np.clip(np.mean(ratios), 0.0, GAP_RATIO_MAX))
        offset += strength * iod * disp
        rot += strength * delta.pose
        bs += strength * delta.blendshapes
    edited = keep_iris_inside(shape, shape + offset)
    for side, (lower_up, upper_down) in lids.items():
        if lower_up or upper_down:
            ids, lid_offset = lid_offsets(edited, side, float(lower_up), float(upper_down))
            edited[ids] += lid_offset
    expression = code.expression
    if not np.array_equal(edited, shape):
        expression = clamp_lids(shape, edited) - identity.shape
    pose = rotate_pose(code.pose, identity, *rot)
    return FaceCode(pose, expression, np.clip(bs, 0.0, 1.0).astype(np.float32))


def iris_move_kept(code: FaceCode, edited: FaceCode, identity: Identity,
                   deltas: Sequence[tuple[Delta, float]]) -> tuple[float, float]:
    """How far the deltas asked the irises to move, and how far :func:`apply_deltas` moved them.

    The iris rule of the module doc shortens a move that would leave the eye opening (a gaze
    past the eye's corner, or on an eye that already looks that way). Eyes that a ``lids`` delta
    acts on are left out (their irises follow the lids).

    Args:
        code, edited: a frame's code and :func:`apply_deltas`'s result for ``deltas``.
        identity: the track's identity.
        deltas: ``(delta, strength)`` pairs.

    Returns:
        ``(asked, kept)``: the largest iris point move asked for and the move made at that
        point, in inter-ocular distances (``(0, 0)`` when no iris move was asked).
    """
    ids = [i for side, (_, _, iris) in EYES.items() for i in iris
           if not any(s != 0.0 and side in d.lids for d, s in deltas)]
    if not ids:
        return 0.0, 0.0
    asked = sum((s * d.displacement[ids] for d, s in deltas if s != 0.0), np.zeros((len(ids), 3)))
    size = np.linalg.norm(asked[:, :2], axis=1)
    if not size.max() > 0:
        return 0.0, 0.0
    k = int(np.argmax(size))
    moved = (edited.expression[ids[k]] - code.expression[ids[k]])[:2] / identity.inter_ocular
    return float(size[k]), float(np.linalg.norm(moved))


def apply_delta(code: FaceCode, identity: Identity, delta: Delta, strength: float) -> FaceCode:
    """Apply one delta at ``strength`` to one frame's code (see :func:`apply_deltas`)."""
    return apply_deltas(code, identity, [(delta, strength)])


@dataclass(frozen=True)
class IdentityChange:
    """How much a face's shape changed outside an edit's region, after re-inverting both.

    Attributes:
        rms: root mean square point distance, as a fraction of inter-ocular distance.
        max: largest point distance, same unit.
        points: how many points were compared (those outside the region).
    """

    rms: float
    max: float
    points: int


def identity_change(
    before_landmarks: NDArray[np.floating],
    after_landmarks: NDArray[np.floating],
    region: NDArray[np.floating] | None = None,
) -> IdentityChange:
    """Compare two observations of one face outside a region, pose removed.

    Both are inverted as stills (:func:`synthesis.codespace.invert_single`); the edited shape is
    aligned to the original by a similarity fit on the points outside the region (weight below
    :data:`OUTSIDE_REGION`), and their distances there are measured in the original's
    inter-ocular distance. Iris points are left out (gaze is not identity).

    Args:
        before_landmarks: ``(478, 3)`` pixels of the original.
        after_landmarks: ``(478, 3)`` pixels of the edited face (rendered or re-detected).
        region: ``(478,)`` weights of the edit's region (None: compare every point).

    Returns:
        The change (target for an edit: rms and max below 0.01).
    """
    ident_a, _ = invert_single(before_landmarks)
    ident_b, _ = invert_single(after_landmarks)
    a, b = ident_a.shape, ident_b.shape
    outside = np.ones(NUM_LANDMARKS, dtype=bool) if region is None else np.asarray(region) < OUTSIDE_REGION
    outside[468:] = False
    if outside.sum() < 3:
        raise ValueError("identity_change: fewer than 3 points outside the region")
    scale, rot, t = similarity_fit(b[outside], a[outside])
    aligned = scale * b[outside] @ rot.T + t
    dist = np.linalg.norm(aligned - a[outside], axis=1) / inter_ocular(a)
    return IdentityChange(float(np.sqrt(np.mean(dist**2))), float(dist.max()), int(outside.sum()))


# --- files ------------------------------------------------------------------------------------


def _round(values: NDArray[np.floating]) -> list[Any]:
    return np.round(np.asarray(values, dtype=np.float64), FILE_DECIMALS).tolist()  # type: ignore[no-any-return]


def delta_to_document(delta: Delta) -> dict[str, Any]:
    """The JSON document of a delta (see the module docstring)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": delta.name,
        "kind": delta.kind,
        "description": delta.description,
        "units": "displacement per unit strength in inter-ocular distances, canonical axes "
        "(x subject's left, y up, z toward the viewer); pose in degrees per unit strength",
        "pose": dict(zip(("yaw", "pitch", "roll"), _round(delta.pose))),
        "max_strength": delta.max_strength,
        "region": _round(delta.region),
        "displacement": _round(delta.displacement),
        "blendshapes": {
            BLENDSHAPE_NAMES[i]: round(float(v), FILE_DECIMALS)
            for i, v in enumerate(delta.blendshapes)
            if round(float(v), FILE_DECIMALS) != 0.0
        },
        "lids": {k: [round(a, FILE_DECIMALS), round(b, FILE_DECIMALS)] for k, (a, b) in delta.lids.items()},
        "provenance": dict(delta.provenance),
    }


def delta_from_document(doc: Any, source: str = "delta document") -> Delta:
    """Build a delta from a parsed JSON document, validating everything.

    Raises:
        InputError: wrong format or version, missing or malformed fields, wrong shapes, NaN or
            values out of range; the message names ``source``.
    """
    def bad(what: str) -> InputError:
        return InputError(f"{source}: {what}")

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f"not a delta file (need \"format\": \"{FORMAT}\")")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"bad version {version!r}")
    if version > VERSION:
        raise bad(f"version {version} is newer than this deltaface reads ({VERSION}); upgrade deltaface")
    try:
        pose_doc = doc.get("pose", {})
        pose = [float(pose_doc.get(k, 0.0)) for k in ("yaw", "pitch", "roll")]
        bs = np.zeros(NUM_BLENDSHAPES, np.float32)
        for key, value in dict(doc.get("blendshapes", {})).items():
            if key not in _BLENDSHAPE_INDEX:
                raise ValueError(f"unknown blendshape {key!r}")
            bs[_BLENDSHAPE_INDEX[key]] = float(value)
        lids = doc.get("lids") or {}
        if not isinstance(lids, dict) or not all(isinstance(v, list) and len(v) == 2 for v in lids.values()):
            raise ValueError("lids must map an eye to [lower_up, upper_down]")
        for key in ("name", "kind", "region", "displacement"):
            if key not in doc:
                raise ValueError(f"missing field {key!r}")
        displacement = np.asarray(doc["displacement"], dtype=np.float64)
        region = np.asarray(doc["region"], dtype=np.float64)
        provenance = doc.get("provenance", {})
        if not isinstance(provenance, dict) or not isinstance(doc.get("description", ""), str):
            raise ValueError("provenance must be an object and description a string")
        return Delta(
            name=doc["name"],
            kind=doc["kind"],
            displacement=displacement,
            pose=np.asarray(pose),
            region=region,
            blendshapes=bs,
            max_strength=float(doc.get("max_strength", 1.0)),
            description=doc.get("description", ""),
            provenance=provenance,
            lids={k: (float(v[0]), float(v[1])) for k, v in lids.items()},
        )
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise bad(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def save_delta(path: str | os.PathLike[str], delta: Delta) -> None:
    """Write a delta file atomically (a temporary file in the same folder, then renamed).

    Raises:
        OutputError: the folder does not exist or is not writable.
    """
    target = Path(path)
    text = json.dumps(delta_to_document(delta), indent=1, allow_nan=False) + "\n"
    write_atomically(target, lambda fh: fh.write(text.encode("utf-8")), "the delta file")


def load_delta(path: str | os.PathLike[str]) -> Delta:
    """Read and validate a delta file.

    Raises:
        InputError: the file is missing, larger than :data:`MAX_FILE_BYTES`, not UTF-8 JSON, of
            another format or a newer version, or has wrong shapes, NaN or out-of-range values.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{p}: {size} bytes is too large for a delta file (limit {MAX_FILE_BYTES})")
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{p}: cannot read the delta file ({exc.strerror or exc})") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"{p}: too large for a delta file (limit {MAX_FILE_BYTES} bytes)")

    def no_constants(name: str) -> float:
        raise ValueError(f"{name} is not allowed")

    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{p}: not a JSON delta file ({str(exc).splitlines()[0]})") from exc
    return delta_from_document(doc, source=str(p))
