"""Region textures borrowed from other frames (or reference images) for the edit stage.

Orchestration of ``synthesis.exemplars`` (which frame lends which region, held over runs and
cross-faded), ``synthesis.uvmap`` (the exemplar's region taken through the mesh's UV space onto
the edited face) and ``compositing.texture`` (colour match and feathered composite):

1. :func:`prepare_texture` (before the render pass): per planned face and region, the region's
   state before and after the edit; where the edit changes it (a blink, a mouth opening, a gaze
   shift), exemplars are chosen among the track's own frames and any reference stills. Where no
   exemplar is in the target state, an eye that must close and a mouth that must open wider are
   made on one of the face's own frames (:func:`closed_lid_references`,
   :func:`opened_mouth_references`); where that fails too, the edit is CLAMPED in that region to
   what a warp can show (:attr:`synthesis.texregions.Region.warp_limit`), and the run summary
   says so.
2. :class:`TextureCompositor` (called by ``plugin.editing.EditStage`` after each face is warped):
   composites the chosen exemplars' region onto the warped frame. The lending frames are decoded
   from the input in one forward pass and kept as face crops until their last use
   (``plugin.exemplar_frames``).

:func:`rebuild_face` is the same machinery for swap repair: one face rebuilt from another frame.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from compositing.lids import close_eye
from compositing.mouth import open_mouth
from compositing.texture import (
    CLEAR_AT, TextureBlendConfig, composite, feathered_alpha, match_colour, ring_agreement, ring_mask, sample,
    uncovered_weight,
)
from plugin.exemplar_frames import ExemplarFrames
from plugin.provenance import merge_ranges
from plugin.video import VideoReader, probe
from synthesis.exemplars import (
    ChoiceConfig, Choice, ExemplarIndex, build_index, choose, clamp_factor, iod_2d, raw_features, state,
)
from synthesis.plan import FacePlan
from synthesis.regions import EYES, LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_OUTER_LOWER, rigid_weights
from synthesis.texregions import FACE, REGIONS, Region
from synthesis.uvmap import correspondence_map, grow, triangle_map
from tracking.analysis import Track
from tracking.errors import ConfigError, InputError
from tracking.pose import turned_angles

#: Image suffixes read as reference stills (anything else is read as a video).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
#: Most frames sampled from a reference video.
MAX_REFERENCE_FRAMES = 60
#: Rounds refining a clamp (the state measured after scaling the landmark change).
CLAMP_ROUNDS = 4
#: Lids made from a frame (:func:`closed_lid_references`): how far they are lowered (1: closed);
#: the frame's eyes at most this closed; the closed still used only where the landmarker
#: re-reads both eyes at least this closed, a lowered one where it reads within this of its
#: amount, and each only where its face is within this mean distance (inter-ocular distances)
#: of the frame's.
LID_AMOUNTS = (0.5, 0.75, 1.0)
LID_SOURCE_MAX_CLOSURE, LID_MIN_CLOSURE, LID_READ_TOL, LID_MAX_MOVE_IOD = 0.25, 0.6, 0.25, 0.1
#: Mouths opened on a frame (:func:`opened_mouth_references`): how much of the opening the edit
#: needs beyond the frame's own each still adds; the frame is the widest-open one within this many
#: degrees of the pose wanted (else the nearest); a still is used only where the landmarker finds
#: the face (as for lids) and re-reads at least this share of the opening drawn.
MOUTH_AMOUNTS = (0.5, 1.0)
MOUTH_POSE_DEG, MOUTH_MIN_READ = 10.0, 0.5
#: A still is made only from a frame whose face is clear around the region (:func:`clear_source`):
#: its ring agrees (``compositing.texture.ring_agreement``, at least ``CLEAR_AT``, in the median)
#: with up to this many other frames of the track, spread over those within ``SOURCE_JUDGE_DEG``
#: of its pose; at most ``SOURCE_TRIES`` frames are tried, in order of preference.
SOURCE_JUDGES, SOURCE_JUDGE_DEG, SOURCE_TRIES = 5, 15.0, 4
#: Frames this close to the best source (pose: degrees; mouth opening: IOD, about the landmarker's
#: own noise on the lips) are equally good: those tried are spread over the clip, where an occluder
#: held over some seconds does not cover them all (:func:`source_order`).
SOURCE_POSE_TOL_DEG, SOURCE_OPENING_TOL = 3.0, 0.01


@dataclass(frozen=True)
class TextureConfig:
    """Settings of region texture transfer.

    Attributes:
        regions: which regions may borrow texture (keys of ``synthesis.texregions.REGIONS``). The
            cheeks (``"cheek_left"``, ``"cheek_right"``: skin a head turn brings toward the
            camera) are not on by default: ``bench/cheek_texture.py`` measured no gain in detail
            on the fixtures' turns of 8 and 14 degrees.
        choice: how exemplars are chosen.
        blend: colour match and feather.
        clamp_without_exemplar: clamp an edit's state change where no exemplar exists (else the
            warp alone shows the full edit).
        closed_lids: where an eye must close and neither the clip nor the references show it
            closed, close it on one of the face's own frames (:func:`closed_lid_references`) and
            borrow from that, before clamping.
        opened_mouth: where the mouth must open wider than the clip and the references show it,
            open it on one of the face's own frames (:func:`opened_mouth_references`: the lower
            teeth and lip dropped, the inside shown) and borrow from that, before clamping.
        exemplar_bytes: most bytes of lending-frame crops the compositor keeps
            (``plugin.exemplar_frames``).
        full_weight_need: a region's texture is composited at full weight from this need on
            (:attr:`synthesis.exemplars.Choice.need`), at ``need / full_weight_need`` below it
            (times the choice's fade, :meth:`synthesis.exemplars.Choice.weight`).
            Half-weight blends of a borrowed state over the warped one show both (a faint iris
            over a closed lid, teeth through closed lips), so the weight rises faster than the need.
    """

    regions: tuple[str, ...] = ("eye_left", "eye_right", "mouth")
    choice: ChoiceConfig = field(default_factory=ChoiceConfig)
    blend: TextureBlendConfig = field(default_factory=TextureBlendConfig)
    clamp_without_exemplar: bool = True
    closed_lids: bool = True
    opened_mouth: bool = True
    exemplar_bytes: int = 256 << 20
    full_weight_need: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.full_weight_need <= 1:
            raise ConfigError(f"TextureConfig.full_weight_need must be in (0, 1], got {self.full_weight_need}")
        unknown = [r for r in self.regions if r not in REGIONS]
        if unknown:
            raise ConfigError(f"TextureConfig.regions: unknown {unknown}; known: {', '.join(REGIONS)}")
        if self.exemplar_bytes < 0:
            raise ConfigError(f"TextureConfig.exemplar_bytes must be >= 0, got {self.exemplar_bytes}")


@dataclass(frozen=True, eq=False)
class Reference:
    """A still of the same person lending texture.

    Attributes:
        name: where it came from (file, or file and frame).
        image: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(478, 3)`` float32 pixels; angles ``(3,)`` degrees; blendshapes ``(52,)``.
    """

    name: str
    image: NDArray[np.uint8]
    landmarks: NDArray[np.float32]
    angles: NDArray[np.float32]
    blendshapes: NDArray[np.float32]


def load_references(paths: Sequence[Path]) -> list[Reference]:
    """Read reference stills (images, or frames sampled from a video) and find the face in each
    (the largest face; stills without one are skipped, a file with none at all is an error).

    The tiled search for faces the whole-image landmarker misses runs only on a still where it
    finds none (``search_only_if_none``).

    Raises:
        InputError: a file cannot be read or holds no face.
    """
    from tracking.aspect import SquarePixels
    from tracking.landmarker import Landmarker, LandmarkerConfig

    out: list[Reference] = []
    if not paths:
        return out
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        for path in paths:
            path = Path(path)
            stills: list[tuple[str, NDArray[np.uint8]]] = []
            aspect = Fraction(1)  # a still's pixels are square; a video's may not be
            if not path.exists():
                raise InputError(f"{path}: no such reference file or folder")
            if path.suffix.lower() in IMAGE_SUFFIXES:
                # imdecode, not imread: OpenCV's reader prints its own warning for a bad file
                bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR) if path.is_file() else None
                if bgr is None:
                    raise InputError(f"{path}: cannot read the reference image")
                stills.append((str(path), np.ascontiguousarray(bgr[:, :, ::-1])))
            else:
                with VideoReader(path) as reader:
                    aspect = reader.info.sample_aspect_ratio
                    n = len(reader)
                    for i in np.unique(np.linspace(0, n - 1, min(n, MAX_REFERENCE_FRAMES)).round().astype(int)):
                        stills.append((f"{path}#{int(i)}", reader.frame_at(int(i)).image))
            found = 0
            for name, image in stills:
                faces = SquarePixels(image.shape[1], aspect).detect_image(lm, image, search_only_if_none=True)
                if not faces:
                    continue
                f = max(faces, key=lambda o: float(np.ptp(o.landmarks[:, 0])))
                out.append(Reference(name, image, f.landmarks, np.array([f.yaw, f.pitch, f.roll], np.float32),
                                     f.blendshapes))
                found += 1
            if not found:
                raise InputError(f"{path}: no face found in the reference")
    return out


def source_order(rows: NDArray[np.integer], score: NDArray[np.floating], tol: float) -> list[int]:
    """Up to ``SOURCE_TRIES`` of ``rows`` (track rows, in time order) to try as a still's source:
    those whose ``score`` (per track row, higher is better) is within ``tol`` of the best, spread
    evenly over time and best first, then the best of the rest."""
    rows = np.asarray(rows, np.int64)
    if rows.size == 0:
        return []
    best = float(score[rows].max())
    near = rows[score[rows] >= best - tol]
    spread = np.unique(near[np.linspace(0, near.size - 1, min(SOURCE_TRIES, near.size)).round().astype(int)])
    spread = spread[np.argsort(-score[spread], kind="stable")]
    tried = set(spread.tolist())
    rest = [int(r) for r in rows[np.argsort(-score[rows], kind="stable")] if r not in tried]
    return [*(int(r) for r in spread), *rest][:SOURCE_TRIES]


def clear_source(track: Track, reader: VideoReader, rows: Sequence[int], regions: Sequence[Region],
                 images: dict[int, NDArray[np.uint8]] | None = None) -> tuple[int, NDArray[np.uint8]] | None:
    """The first of ``rows`` (track rows, in order of preference: :func:`source_order`) whose
    face shows no occluder around any of ``regions``, and its image; None if none.

    A hand, a microphone or a card over the mouth is tracked through (the landmarker makes up the
    lips under it), so a still made there would draw the edit onto the occluder, and the compositor
    would paste it wherever the frame shows the same occluder. A frame counts as clear where the
    region's ring, taken onto up to ``SOURCE_JUDGES`` other frames of the track (spread in time over
    those within ``SOURCE_JUDGE_DEG`` of its pose), agrees with them (``ring_agreement`` at least
    ``CLEAR_AT`` in the median), as the compositor's own hold-back reads it. A frame with no other
    to compare with is taken as it is; where an occluder is in most frames, so is the still.
    ``images`` (track row: frame image) keeps the frames decoded between calls on one reader.
    """
    ok = np.flatnonzero(track.confidence > 0)
    images = {} if images is None else images

    def image(row: int) -> NDArray[np.uint8]:
        if row not in images:
            images[row] = reader.frame_at(int(track.frame_indices[row])).image
        return images[row]

    for row in rows:
        pool = ok[(np.abs(track.angles[ok] - track.angles[row]).max(axis=1) <= SOURCE_JUDGE_DEG) & (ok != row)]
        judges = np.unique(pool[np.linspace(0, pool.size - 1, min(SOURCE_JUDGES, pool.size)).round().astype(int)]) \
            if pool.size else pool
        clear = True
        for region in regions:
            agree: list[float] = []
            for j in judges:
                measured: list[float] = []
                transfer_region(image(int(j)), track.landmarks[j], [(image(row), track.landmarks[row], 1.0)], region,
                                TextureBlendConfig(), agreement_out=measured)
                agree.extend(measured)
            if agree and float(np.median(agree)) < CLEAR_AT:
                clear = False
                break
        if clear:
            return row, image(row)
    return None


def closed_lid_references(track: Track, input_path: Path, near: NDArray[np.floating],
                          open_gap: dict[str, float]) -> list[Reference]:
    """Stills of this face with both eyes closed, and lowered part of the way (``LID_AMOUNTS``),
    made from one of its own frames (:func:`compositing.lids.close_eye`), for a clip and
    references that show no closed eye.

    The frame is one with both eyes open (closure at most ``LID_SOURCE_MAX_CLOSURE``) whose head
    pose is nearest ``near`` (yaw, pitch, roll degrees; within ``SOURCE_POSE_TOL_DEG`` of the
    nearest) and whose eyes are clear (:func:`clear_source`: no hand or glasses' glare over them
    that other frames do not show). A made still's landmarks are the
    frame's, moved as its pixels were (:func:`compositing.lids.close_eye`): the lids are exactly
    where they were drawn, so the exemplar choice and the composite see the closure the still
    shows. The landmarker re-reads every still as a check that it is taken for a face with those
    lids: none is used unless it finds this face (within ``LID_MAX_MOVE_IOD``) and reads both
    eyes of the closed one at least ``LID_MIN_CLOSURE`` closed; a partly lowered one is left out
    where it reads more than ``LID_READ_TOL`` from the closure drawn on either eye.
    """
    from tracking.aspect import SquarePixels
    from tracking.landmarker import Landmarker, LandmarkerConfig

    eyes = ("eye_left", "eye_right")
    closure = np.stack([state(raw_features(track.landmarks, e), e, open_gap.get(e, 1.0))[:, 0] for e in eyes], 1)
    ok = (closure.max(axis=1) <= LID_SOURCE_MAX_CLOSURE) & (track.confidence > 0)
    if not ok.any():
        return []
    far = np.abs(track.angles - np.asarray(near, np.float64)[None]).max(axis=1)
    rows = source_order(np.flatnonzero(ok), -far, SOURCE_POSE_TOL_DEG)
    with VideoReader(input_path) as reader:
        found = clear_source(track, reader, rows, (REGIONS["eye_left"], REGIONS["eye_right"]))
        aspect = reader.info.sample_aspect_ratio
    if found is None:
        return []
    row, image = found
    frame = int(track.frame_indices[row])
    src = track.landmarks[row]
    iod = iod_2d(src[None])[0]
    made: list[Reference] = []
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        for amount in sorted(LID_AMOUNTS, reverse=True):  # the closed one first: it decides
            closed, points = image, src.astype(np.float64)
            for upper, lower, _ in (EYES["left"], EYES["right"]):
                # each eye's contours as the other eye's closing left them (they do not overlap).
                # The lid points move straight across the eye, as the blink control moves them, so
                # a drawn-shut eye measures as shut as a planned one (paired points keep their
                # offset along the eye).
                closed, points = close_eye(closed, points[list(upper)], points[list(lower)], amount, points)
            face = _found_again(lm, SquarePixels(image.shape[1], aspect), closed, points, iod)
            if face is None:
                if amount == 1.0:
                    return []
                continue
            drawn = np.array([state(raw_features(points, e), e, open_gap.get(e, 1.0))[0] for e in eyes])
            read = np.array([state(raw_features(face.landmarks, e), e, open_gap.get(e, 1.0))[0] for e in eyes])
            if amount == 1.0 and read.min() < LID_MIN_CLOSURE:
                return []
            if amount < 1.0 and np.abs(read - drawn).max() > LID_READ_TOL:
                continue
            name = f"closed lids made from frame {frame}" if amount == 1.0 else \
                f"lids {amount:.0%} lowered, made from frame {frame}"
            made.append(Reference(name, closed, points.astype(np.float32), track.angles[row].astype(np.float32),
                                  face.blendshapes))
    return made


def _found_again(lm: Any, detect: Any, image: NDArray[np.uint8], points: NDArray[np.float64], iod: float) -> Any:
    """The face the landmarker ``lm`` finds in a made still ``image`` (through ``detect``, a
    ``tracking.aspect.SquarePixels``) nearest the still's own ``points``; None where it finds none
    within ``LID_MAX_MOVE_IOD`` of them (not this face)."""
    faces = detect.detect_image(lm, image, search_only_if_none=True)
    dist = [float(np.linalg.norm(o.landmarks[:468, :2] - points[:468, :2], axis=1).mean()) for o in faces]
    if not faces or min(dist) > LID_MAX_MOVE_IOD * iod:
        return None
    return faces[int(np.argmin(dist))]


def opened_mouth_references(track: Track, input_path: Path, near: NDArray[np.floating],
                            gaps: NDArray[np.floating] | float) -> list[Reference]:
    """Stills of this face with its mouth opened to the inner-lip gaps ``gaps`` (inter-ocular
    distances, :func:`synthesis.exemplars.raw_features`: the edit's targets that no frame of the clip
    and no reference shows) and part of the way there (``MOUTH_AMOUNTS``), each made from one of its
    own frames (:func:`compositing.mouth.open_mouth`).

    From the widest target down, in levels: a level's frame is among the widest-open ones less open
    than the level whose head pose is within ``MOUTH_POSE_DEG`` of ``near`` (yaw, pitch, roll
    degrees; else the nearest in pose), and whose mouth is clear (:func:`clear_source`). Its stills
    serve the targets down to the gap's ``feature_scale`` below the least open of them (an exemplar
    may be that much more open than its target); the widest target left starts the next level. A
    still's landmarks are the frame's, moved as its pixels were. The landmarker re-reads each still:
    one is used only where it finds this face (within ``LID_MAX_MOVE_IOD``) and reads at least
    ``MOUTH_MIN_READ`` of the opening drawn; a level gets none unless its widest one passes.
    """
    from tracking.landmarker import Landmarker, LandmarkerConfig

    ok = track.confidence > 0
    want = np.sort(np.atleast_1d(np.asarray(gaps, np.float64)))[::-1]
    if not ok.any() or want.size == 0:
        return []
    far = np.abs(track.angles - np.asarray(near, np.float64)[None]).max(axis=1)
    opening = raw_features(track.landmarks, "mouth")[:, 0]
    close = ok & (far <= max(MOUTH_POSE_DEG, float(far[ok].min())))
    reach = REGIONS["mouth"].feature_scale[0]
    made: list[Reference] = []
    decoded: dict[int, NDArray[np.uint8]] = {}  # frames judged for one level serve the next
    with VideoReader(input_path) as reader, Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        aspect = reader.info.sample_aspect_ratio
        while want.size:
            level = float(want[0])
            found = clear_source(track, reader, source_order(np.flatnonzero(close & (opening < level)), opening,
                                                             SOURCE_OPENING_TOL), (REGIONS["mouth"],), decoded)
            stills = [] if found is None else _opened_mouths(track, found[0], found[1], level, lm, aspect)
            made.extend(stills)
            lowest = min([level, *(float(raw_features(r.landmarks, "mouth")[0]) for r in stills)])
            want = want[want < lowest - reach]
    return made


def _opened_mouths(track: Track, row: int, image: NDArray[np.uint8], gap: float, lm: Any,
                   aspect: Fraction) -> list[Reference]:
    """:func:`opened_mouth_references`' stills of one level: track row ``row`` (its frame ``image``,
    of sample aspect ratio ``aspect``) opened to ``gap`` and part way, each kept where the
    landmarker ``lm`` re-reads it open; none unless the widest is."""
    from tracking.aspect import SquarePixels

    detect = SquarePixels(image.shape[1], aspect)
    opening = float(raw_features(track.landmarks[row], "mouth")[0])
    frame = int(track.frame_indices[row])
    src = track.landmarks[row].astype(np.float64)
    iod = float(iod_2d(src[None])[0])
    lips = (src[list(LIPS_INNER_UPPER)], src[list(LIPS_INNER_LOWER)], src[list(LIPS_OUTER_LOWER)])
    made: list[Reference] = []
    for amount in sorted(MOUTH_AMOUNTS, reverse=True):  # the widest first: it decides
        want = opening + amount * (gap - opening)
        drop = (want - opening) * iod
        opened, points = open_mouth(image, *lips, drop, src)
        drawn = float(raw_features(points, "mouth")[0])  # the drop tapers to the corners
        if drawn > opening:
            drop *= (want - opening) / (drawn - opening)
            opened, points = open_mouth(image, *lips, drop, src)
            drawn = float(raw_features(points, "mouth")[0])
        face = _found_again(lm, detect, opened, points, iod)
        if face is None or float(raw_features(face.landmarks, "mouth")[0]) - opening < MOUTH_MIN_READ * (drawn - opening):
            if amount == max(MOUTH_AMOUNTS):
                return []
            continue
        made.append(Reference(f"mouth opened to {drawn:.2f} IOD, made from frame {frame}", opened,
                              points.astype(np.float32), track.angles[row].astype(np.float32), face.blendshapes))
    return made


def reference_index(refs: Sequence[Reference], open_gap: dict[str, float]) -> ExemplarIndex:
    """An exemplar index over reference stills (keys are positions in ``refs``)."""
    n = len(refs)
    return build_index(np.arange(n), np.stack([r.landmarks for r in refs]) if n else np.zeros((0, 478, 3)),
                       np.stack([r.angles for r in refs]) if n else np.zeros((0, 3)),
                       np.stack([r.blendshapes for r in refs]) if n else np.zeros((0, 52)),
                       source="reference", open_gap=open_gap,
                       frame_size=np.array([r.image.shape[:2] for r in refs]) if n else None)


@functools.lru_cache(maxsize=16)
def _clamp_weights(region: Region, rings: int = 4) -> NDArray[np.float64]:
    """``(478,)``: 1 on the region's core (and iris), falling linearly to 0 over ``rings`` rings."""
    w = np.zeros(478)
    level = set(region.core)
    w[list(level)] = 1.0
    for k in range(1, rings + 1):
        nxt = set(grow(tuple(level), 1)) - level
        w[list(nxt)] = 1.0 - k / (rings + 1)
        level |= nxt
    if region.name == "eye_left":
        w[473:478] = 1.0
    elif region.name == "eye_right":
        w[468:473] = 1.0
    w.flags.writeable = False
    return w


def region_scale(region: Region, factors: NDArray[np.floating] | float) -> NDArray[np.float64]:
    """How much of an edit's change each landmark keeps when the change around ``region`` is
    scaled by ``factors``: ``(M, 478)`` for ``(M,)`` factors (one per frame), ``(478,)`` for one;
    the factor on the region's core, 1 far from it (:func:`_clamp_weights`)."""
    f = np.asarray(factors, np.float64)
    return 1.0 + (f - 1.0)[..., None] * _clamp_weights(region)


def clamp_plan(plan: FacePlan, region: Region, factors: NDArray[np.floating]) -> FacePlan:
    """The plan with its change scaled by ``factors`` (per frame) around ``region``."""
    scale = region_scale(region, factors)  # (M, 478)
    after = plan.before + (plan.after - plan.before) * scale[..., None].astype(np.float32)
    return dataclasses.replace(plan, after=after.astype(np.float32))


@dataclass(frozen=True, eq=False)
class _RegionJob:
    region: Region
    choice: Choice
    weights: NDArray[np.float64]  # (M,) the choice's composite weight per plan row (Choice.weight)


class TextureCompositor:
    """Composites borrowed region textures onto warped faces (the ``texture`` of ``EditStage``).

    Args:
        input_path: the clip the exemplar frames are decoded from.
        tracks: the analysed tracks by id.
        jobs: ``{track_id: [region jobs]}`` from :func:`prepare_texture`.
        references: reference stills (the index's source 1 rows).
        config: settings.
        track_references: per track id, the references of a track that has its own (closed
            lids made from its frames), in place of ``references``.
        plan_frames: per track id, the frame index of each plan row (``FacePlan.frame_indices``):
            the lending frames are read forward, once, in the order the render needs them
            (``plugin.exemplar_frames``).
    """

    def __init__(self, input_path: Path, tracks: dict[int, Track], jobs: dict[int, list[_RegionJob]],
                 references: Sequence[Reference], config: TextureConfig,
                 track_references: dict[int, list[Reference]] | None,
                 plan_frames: dict[int, NDArray[np.integer]]) -> None:
        self.input_path, self.tracks, self.jobs = Path(input_path), tracks, jobs
        self.references, self.config = list(references), config
        self.track_references = dict(track_references or {})
        self.lending = self._lending_frames(plan_frames)
        self.frames_textured = 0
        #: (track id, region name) -> {frame: lowest ring agreement} where a region's texture was
        #: held back, wholly or in part, because something covered the region in that frame.
        self.covered: dict[tuple[int, str], dict[int, float]] = {}
        # The edit stage composites two frames at once: the lending frames and the counts are
        # shared, the compositing itself (most of the time) is not.
        self._lock = threading.Lock()

    def _lending_frames(self, plan_frames: dict[int, NDArray[np.integer]]) -> ExemplarFrames:
        """The clip frames the jobs borrow from, with the last frame borrowing from each."""
        uses: dict[tuple[int, int], int] = {}
        landmarks: dict[tuple[int, int], NDArray[np.float32]] = {}
        for tid, jobs in self.jobs.items():
            track, frames = self.tracks[tid], np.asarray(plan_frames[tid])
            for job in jobs:
                ch = job.choice
                rows = np.flatnonzero(job.weights > 0)
                for pick in (ch.first[rows], ch.second[rows]):
                    ok = pick >= 0
                    cand = ch.candidates[pick[ok]]
                    clip = cand[:, 0] == 0
                    for r, at in zip(cand[clip, 1].tolist(), frames[rows[ok][clip]].tolist(), strict=True):
                        key = (tid, int(track.frame_indices[r]))
                        uses[key] = max(uses.get(key, -1), int(at))
                        landmarks[key] = track.landmarks[r]
        return ExemplarFrames(self.input_path, uses, landmarks, self.config.exemplar_bytes)

    def _exemplar(self, track: Track, cand: NDArray[np.int64],
                  now: int) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        sid, row = int(cand[0]), int(cand[1])
        if sid == 0:
            return self.lending.get(track.track_id, int(track.frame_indices[row]), now)
        ref = self.track_references.get(track.track_id, self.references)[row]
        return ref.image, ref.landmarks

    def __call__(self, image: NDArray[np.uint8], frame_index: int, plan: FacePlan, row: int,
                 owned: bool = False) -> NDArray[np.uint8]:
        """Composite the regions face ``plan.track_id`` borrows at this frame onto ``image``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB, the frame with the face already warped.
            frame_index: the frame's index (== ``plan.frame_indices[row]``).
            plan: the face's plan; ``plan.after[row]`` is the edited geometry.
            row: the frame's row in the plan.
            owned: ``image`` is the caller's own array, nobody else holds it (e.g. the warp's
                fresh output): it is written in place, saving a copy of the frame. False: it is
                not modified.

        Returns:
            The new frame (``image`` itself when ``owned``, or when no region borrows texture here).
        """
        track = self.tracks.get(plan.track_id)
        out = image
        for job in self.jobs.get(plan.track_id, []):
            ch = job.choice
            weight = float(job.weights[row])
            if weight <= 0:
                continue
            with self._lock:
                layers = [(*self._exemplar(track, ch.candidates[ch.first[row]], frame_index), 1.0 - float(ch.mix[row]))]
                if ch.second[row] >= 0:
                    layers.append((*self._exemplar(track, ch.candidates[ch.second[row]], frame_index),
                                   float(ch.mix[row])))
            target = plan.after[row]
            if ch.extend is not None and ch.extend[row] > 1:  # a faded-in exemplar, at its own state
                scale = region_scale(job.region, ch.extend[row])[:, None]
                target = plan.before[row] + (plan.after[row] - plan.before[row]) * scale
            agreement: list[float] = []
            res = transfer_region(out, target, layers, job.region, self.config.blend, weight=weight,
                                  in_place=owned, agreement_out=agreement)
            owned = owned or res is not out
            out = res
            with self._lock:
                self.frames_textured += 1
                if agreement and agreement[0] < CLEAR_AT:
                    self.covered.setdefault((plan.track_id, job.region.name), {})[frame_index] = agreement[0]
        return out

    def covered_events(self) -> list[dict[str, Any]]:
        """Where a region's texture was held back because something covered the region, as the
        run summary lists texture events (``action`` ``"covered"``)."""
        events = []
        for (face, region), frames in sorted(self.covered.items()):
            for a, b in merge_ranges((f, f) for f in sorted(frames)):
                low = min(frames[f] for f in range(a, b + 1) if f in frames)
                events.append({"face": face, "region": region, "frames": [a, b], "action": "covered",
                               "reason": f"the borrowed {region.replace('_', ' ')} and the frame disagree around "
                                         f"it (down to {low:.2f}): something covers one of them, texture held back"})
        return events

    def close(self) -> None:
        self.lending.close()


def transfer_region(
    frame: NDArray[np.uint8],
    target_landmarks: NDArray[np.floating],
    layers: Sequence[tuple[NDArray[np.uint8], NDArray[np.floating], float]],
    region: Region,
    config: TextureBlendConfig | None = None,
    weight: float = 1.0,
    *,
    in_place: bool = False,
    agreement_out: list[float] | None = None,
) -> NDArray[np.uint8]:
    """Composite a region borrowed from one or more exemplars (cross-faded) onto ``frame``.

    Work is confined to the box around the region's core plus the colour-matching ring: the
    target is rasterized once (the outer triangles, nearer ones winning), each exemplar is sampled
    through per-triangle affine maps, and only the core's box is blended.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB; not modified unless ``in_place``.
        target_landmarks: ``(478, 2|3)`` pixels: the geometry the region takes in ``frame``.
        layers: ``(exemplar image (H', W', 3) uint8 RGB, its landmarks (478, 2|3) pixels, weight)``;
            weights are normalized.
        region: which region (core replaced, band to ``outer`` used for the colour match).
        config: feather and ring sizes.
        weight: overall strength in [0, 1].
        in_place: write into ``frame`` (which the caller owns) instead of a copy.
        agreement_out: when given, the ring agreement (``compositing.texture.ring_agreement``)
            is appended to it whenever it was measured.

    Returns:
        The new frame (``frame`` itself when nothing is covered, or when ``in_place``).
    """
    config = config or TextureBlendConfig()
    tgt = np.asarray(target_landmarks, np.float64)
    h, w = frame.shape[:2]
    pts = tgt[list(region.core), :2]
    iod = float(iod_2d(tgt))
    pad = int(np.ceil(2 + config.ring_iod * iod))
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
    box = (max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h))
    if box[0] >= box[2] or box[1] >= box[3] or weight <= 0:
        return frame
    total = sum(max(float(lw), 0.0) for _, _, lw in layers)
    if total <= 0:
        return frame
    tri_map = triangle_map(tgt, region.outer_triangles, box, tgt[:, 2] if tgt.shape[1] > 2 else None)
    covered = tri_map >= 0
    core = region.core_lookup[tri_map + 1]
    if not core.any():
        return frame
    base = frame[box[1]:box[3], box[0]:box[2]]
    ring = ring_mask(core, covered, config.ring_iod * iod) if config.match_colour else None
    tex = None
    for ex_image, ex_lm, lw in layers:
        if lw <= 0:
            continue
        mx, my, _ = correspondence_map(tgt, ex_lm, region.outer_triangles, box, tri_map=tri_map)
        t = sample(ex_image, mx, my)
        if ring is not None:
            t = match_colour(t, base, ring, where=core)
        t *= float(lw) / total
        tex = t if tex is None else tex + t
    if tex is None:
        return frame
    if ring is not None and config.hold_back_covered:  # nothing pasted onto what covers the face
        agreement = ring_agreement(tex, base, ring)
        if agreement is not None and agreement_out is not None:
            agreement_out.append(agreement)
        weight *= uncovered_weight(agreement)
        if weight <= 0:
            return frame
    alpha = feathered_alpha(core, config.feather_iod * iod) * float(np.clip(weight, 0, 1))
    out = frame if in_place else frame.copy()
    out[box[1]:box[3], box[0]:box[2]] = composite(base, tex, alpha)
    return out


def rebuild_face(
    target_frame: NDArray[np.uint8],
    target_landmarks: NDArray[np.floating],
    exemplar_frame: NDArray[np.uint8],
    exemplar_landmarks: NDArray[np.floating],
    region_mask_spec: str | Region = "face",
) -> NDArray[np.uint8]:
    """Rebuild a face (or one region) of ``target_frame`` from another frame of the same face.

    The exemplar's pixels are taken through the mesh's UV space onto the target geometry,
    colour-matched in Lab over a ring just inside the region's edge (``"face"``: the band inside
    the face oval) and composited with a feathered mask. For swap repair: a frame where the swap
    is missing or garbled, rebuilt from the nearest good swapped frame at the plate's landmarks.

    Args:
        target_frame: ``(H, W, 3)`` uint8 RGB frame to repair; not modified.
        target_landmarks: ``(478, 2|3)`` float pixels: where the face is in ``target_frame``.
        exemplar_frame: ``(H', W', 3)`` uint8 RGB frame holding a good face.
        exemplar_landmarks: ``(478, 2|3)`` float pixels of that face in ``exemplar_frame``.
        region_mask_spec: ``"face"``, a key of ``synthesis.texregions.REGIONS`` (``"eye_left"``,
            ``"eye_right"``, ``"mouth"``) or a ``Region``.

    Returns:
        A new ``(H, W, 3)`` uint8 RGB frame.

    Raises:
        ConfigError: an unknown region name.
    """
    if isinstance(region_mask_spec, Region):
        region = region_mask_spec
    elif region_mask_spec == "face":
        region = FACE
    elif region_mask_spec in REGIONS:
        region = REGIONS[region_mask_spec]
    else:
        raise ConfigError(f"rebuild_face: unknown region {region_mask_spec!r}; use 'face' or one of {', '.join(REGIONS)}")
    # the target frame's own face is what is missing: nothing there to agree with
    out = transfer_region(target_frame, target_landmarks, [(exemplar_frame, exemplar_landmarks, 1.0)], region,
                          TextureBlendConfig(hold_back_covered=False))
    return out.copy() if out is target_frame else out


def _runs(values: NDArray[np.integer]) -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of equal consecutive values (stop exclusive)."""
    cuts = [0, *(np.flatnonzero(np.diff(values) != 0) + 1).tolist(), len(values)]
    return [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1) if cuts[i + 1] > cuts[i]]


#: Order of a region's events in a run summary.
_ACTION_ORDER = {"clamp": 0, "texture": 1, "warp_only": 2}


def chain_texture_events(first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of two :func:`prepare_texture` passes, the second run on the first's clamped
    plans (swap repair clamps before its closed loop, then prepares the refined plans again),
    as one pass over the original plans would report them.

    The second pass measures its clamps against plans already clamped, so on its own it
    under-states them (a factor near 1, or none, or "warp_only" where the first pass clamped).
    Here a frame's factor is the product of the two passes' (each the smallest of its event's
    range), a frame the first pass clamped stays a clamp whatever the second says of it, and
    "texture" events are the second pass's (the exemplars the render uses).
    """
    factors: dict[tuple[int, str, int], float] = {}
    for e in first:
        if e["action"] == "clamp":
            for f in range(e["frames"][0], e["frames"][1] + 1):
                factors[(e["face"], e["region"], f)] = float(e["factor"])
    clamps = dict(factors)
    kept: list[dict[str, Any]] = []
    for e in second:
        frames = range(e["frames"][0], e["frames"][1] + 1)
        if e["action"] == "clamp":
            for f in frames:
                key = (e["face"], e["region"], f)
                clamps[key] = factors.get(key, 1.0) * float(e["factor"])
        elif e["action"] == "warp_only":
            rest = [f for f in frames if (e["face"], e["region"], f) not in factors]
            kept.extend({**e, "frames": [a, b]} for a, b in merge_ranges((f, f) for f in rest))
        else:
            kept.append(e)
    by_region: dict[tuple[int, str], list[int]] = {}
    for face, region, f in clamps:
        by_region.setdefault((face, region), []).append(f)
    reason = next((e["reason"] for e in (*first, *second) if e["action"] == "clamp"), "")
    for (face, region), frames in by_region.items():
        for a, b in merge_ranges((f, f) for f in frames):
            low = min(clamps[(face, region, f)] for f in range(a, b + 1))  # runs of clamped frames only
            kept.append({"face": face, "region": region, "frames": [a, b], "action": "clamp", "reason": reason,
                         "factor": round(low, 3)})
    regions = list(dict.fromkeys((e["face"], e["region"]) for e in (*first, *second)))
    return sorted(kept, key=lambda e: (regions.index((e["face"], e["region"])), _ACTION_ORDER.get(e["action"], 3),
                                       e["frames"][0]))


def prepare_texture(
    plans: Sequence[FacePlan],
    tracks: dict[int, Track],
    input_path: Path,
    references: Sequence[Reference] = (),
    config: TextureConfig | None = None,
    lids: dict[int, list[Reference]] | None = None,
    mouths: dict[int, list[Reference]] | None = None,
) -> tuple[list[FacePlan], TextureCompositor, list[dict[str, Any]]]:
    """Choose exemplars for every planned face and region; clamp where none exists.

    Args:
        plans: the planned faces.
        tracks: the clip's tracks by id.
        input_path: the clip (exemplar frames are decoded from it during the render).
        references: reference stills of the person (used for every face).
        config: settings.
        lids: lids made per track id (:func:`closed_lid_references`; an empty list: tried, none
            usable), read and filled: a caller preparing the same clip twice (swap repair, before
            and after its closed loop) passes one dict, so that they are made once.
        mouths: mouths opened per track id (:func:`opened_mouth_references`), as ``lids``.

    Returns:
        The plans (clamped where needed), the compositor for ``EditStage(texture=...)``, and
        events for the run summary, per run of frames: ``{"face", "region", "frames": [a, b],
        "action"}`` with ``"texture"`` (``"exemplars"``: every source used, ``"runs"``: ``[first,
        last, source]`` of the main exemplar, cross-fades aside), ``"clamp"`` (``"factor"``: the
        smallest scale of the edit's change there, ``"reason"``) or ``"warp_only"``
        (``"reason"``: texture was needed but none exists, and no clamp acted: the change is
        within the region's warp limit, or clamping is off).
    """
    config = config or TextureConfig()
    info = probe(input_path)
    frame_size = (info.height, info.width)
    out_plans: list[FacePlan] = []
    jobs: dict[int, list[_RegionJob]] = {}
    events: list[dict[str, Any]] = []
    lids = {} if lids is None else lids
    mouths = {} if mouths is None else mouths

    # A track's own stills (lids and mouths made from its frames), in the order they were made:
    # each set is appended, so that the choices made before it keep their indices.
    extra = {tid: [*lids.get(tid, []), *mouths.get(tid, [])] for tid in {*lids, *mouths}}

    def own_refs(tid: int, made: list[Reference]) -> list[Reference]:
        extra[tid] = [*extra.get(tid, []), *made]
        return [*references, *extra[tid]]

    track_refs = {tid: [*references, *stills] for tid, stills in extra.items() if stills}
    for plan in plans:
        track = tracks[plan.track_id]
        if plan.frame_indices.size == 0:
            out_plans.append(plan)
            continue
        index = build_index(track.frame_indices, track.landmarks, track.angles, track.blendshapes, track.confidence,
                            frame_size=frame_size)
        indexes = [index]
        own = track_refs.get(plan.track_id, references)
        if own:
            indexes.append(reference_index(own, dict(index.open_gap)))
        rows = np.searchsorted(track.frame_indices, plan.frame_indices)
        tracked, bs = track.angles[rows], track.blendshapes[rows]
        angles = turned_angles(plan.before, plan.after, tracked, rigid_weights())
        for name in config.regions:
            region = REGIONS[name]
            gap = index.open_gap.get(name, 1.0)
            before = state(raw_features(plan.before, name), name, gap)
            after = state(raw_features(plan.after, name), name, gap)
            ch = choose(name, before, after, angles, bs, plan.segments, indexes, gap, config=config.choice,
                        angles_before=tracked)
            # the state's first feature beyond what any exemplar shows: an eye closing, a mouth opening
            beyond = ch.unsupported & (after[:, 0] > before[:, 0])
            # stills made from the face's own frames: lids for an eye, a wider mouth for the mouth
            store = lids if name.startswith("eye_") and config.closed_lids else \
                mouths if name == "mouth" and config.opened_mouth else None
            if store is not None and plan.track_id not in store and beyond.any():
                near = np.median(angles[beyond], axis=0)
                made = closed_lid_references(track, input_path, near, dict(index.open_gap)) if store is lids else \
                    opened_mouth_references(track, input_path, near, raw_features(plan.after[beyond], name)[:, 0])
                store[plan.track_id] = made
                if made:
                    track_refs[plan.track_id] = own_refs(plan.track_id, made)
                    indexes = [index, reference_index(track_refs[plan.track_id], dict(index.open_gap))]
                    ch = choose(name, before, after, angles, bs, plan.segments, indexes, gap, config=config.choice,
                                angles_before=tracked)
            clamped = np.zeros(plan.frame_indices.shape, bool)
            if ch.unsupported.any() and config.clamp_without_exemplar:
                factors = np.where(ch.unsupported, clamp_factor(name, before, after), 1.0)
                clamped = factors < 1
                if clamped.any():
                    unclamped = plan
                    for _ in range(CLAMP_ROUNDS):  # closure is not linear in the landmarks: refine
                        plan = clamp_plan(unclamped, region, factors)
                        again = clamp_factor(name, before, state(raw_features(plan.after, name), name, gap))
                        again = np.where(clamped, again, 1.0)
                        if again.min() > 0.99:
                            break
                        factors = factors * again
                    for a, b in merge_ranges((int(f), int(f)) for f in plan.frame_indices[factors < 1]):
                        sel = (plan.frame_indices >= a) & (plan.frame_indices <= b)
                        events.append({"face": plan.track_id, "region": name, "frames": [a, b], "action": "clamp",
                                       "reason": "no exemplar in the target state in the clip or references",
                                       "factor": round(float(factors[sel].min()), 3)})
                    after = state(raw_features(plan.after, name), name, gap)
                    ch = choose(name, before, after, angles, bs, plan.segments, indexes, gap, config=config.choice,
                                angles_before=tracked)
            used = (ch.first >= 0) & (ch.need > 0)
            if used.any():
                jobs.setdefault(plan.track_id, []).append(_RegionJob(region, ch, ch.weight(config.full_weight_need)))
                for a, b in merge_ranges((int(f), int(f)) for f in plan.frame_indices[used]):
                    sel = used & (plan.frame_indices >= a) & (plan.frame_indices <= b)
                    def label(c: int) -> str:
                        sid, r = (int(v) for v in ch.candidates[c])
                        refs = track_refs.get(plan.track_id, references)
                        return f"clip:{int(track.frame_indices[r])}" if sid == 0 else f"reference:{refs[r].name}"

                    picks = sorted({int(c) for c in np.concatenate([ch.first[sel], ch.second[sel]]) if c >= 0})
                    rows_ = np.flatnonzero(sel)
                    runs = [[int(plan.frame_indices[rows_[i]]), int(plan.frame_indices[rows_[j - 1]]), label(int(ch.first[rows_[i]]))]
                            for i, j in _runs(ch.first[rows_])]
                    events.append({"face": plan.track_id, "region": name, "frames": [a, b], "action": "texture",
                                   "exemplars": [label(c) for c in picks], "runs": runs})
            left = ch.unsupported & (ch.need > 0) & ~clamped
            for a, b in merge_ranges((int(f), int(f)) for f in plan.frame_indices[left]):
                events.append({"face": plan.track_id, "region": name, "frames": [a, b], "action": "warp_only",
                               "reason": "no exemplar in the target state; " + (
                                   "the edit is within what a warp shows" if config.clamp_without_exemplar
                                   else "clamping is off")})
        out_plans.append(plan)
    frames = {p.track_id: p.frame_indices for p in out_plans}
    return out_plans, TextureCompositor(input_path, tracks, jobs, references, config, track_refs, frames), events
