"""The search for faces the full-frame landmarker misses, frame by frame through a clip.

:class:`tracking.landmarker.Landmarker` runs MediaPipe's landmarker on the whole frame; a face
that is small relative to the frame, cut by its border, or one of several is often missed.
:class:`MissedFaceSearch` decides, per video frame, what to do about it:

* which tile sizes of the :class:`tracking.recovery.TiledFaceDetector` run now (every size on a
  shot's first frame; then each on its own cadence, the smaller ones less often, see
  ``LandmarkerConfig.recovery_interval_s``);
* which faces found that way are followed to the next frame by a landmarker re-run on a crop
  around them (cheaper than the detector, and independent of which sizes run);
* which weak detections at the picture's edge (a face coming in across the border) are looked at
  again on the next frames, and which such spots are set aside as clutter for a while.

It holds no MediaPipe task of its own but the detector: crops are landmarked through the
``landmark_boxes`` callable the landmarker gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tracking.bundle import LandmarkerBundle
from tracking.frame import Frame
from tracking.observation import FaceObservation, Source
from tracking.recovery import TiledFaceDetector, box_covered, box_iou, tile_sides, touches_border

if TYPE_CHECKING:
    from tracking.landmarker import LandmarkerConfig

#: A weak border detection followed since one search run and still without a face at the next
#: is clutter at the picture's edge (a guitar, a textured wall): that spot (boxes overlapping it
#: by BORDER_SPOT_IOU) is not tried again for this many runs (about 3 s at the default
#: interval). Without it, a textured left edge cost bench/perf.py's 1080p analysis a third of its
#: speed (63 crop re-runs in 150 frames).
BORDER_BACKOFF_RUNS = 15
BORDER_SPOT_IOU = 0.3

#: ``(image, frame_index, found, boxes, margin) -> faces``: the landmarker re-run on crops around
#: ``boxes`` (``margin`` times their side), skipping boxes the ``found`` faces already cover
#: (:meth:`tracking.landmarker.Landmarker.landmark_boxes`).
LandmarkBoxes = Callable[
    [NDArray[np.uint8], int, list[FaceObservation], Iterable[NDArray[np.floating]], float], list[FaceObservation]
]


def is_duplicate(box: NDArray[np.floating], others: Iterable[NDArray[np.floating]]) -> bool:
    """Whether ``box`` is the same face as one of ``others``: IoU of at least 0.5, or 80% of it
    inside one of them."""
    return any(box_iou(box, k) >= 0.5 or box_covered(box, k) >= 0.8 for k in others)


def grown(box: NDArray[np.floating], factor: float) -> NDArray[np.float32]:
    """``box`` scaled by ``factor`` about its centre."""
    c = 0.5 * (box[:2] + box[2:])
    half = 0.5 * (box[2:] - box[:2]) * factor
    return np.concatenate([c - half, c + half]).astype(np.float32)


class MissedFaceSearch:
    """Finds, frame by frame, the faces the full-frame landmarker missed (see the module).

    Call :meth:`video_frame` once per frame in presentation order, :meth:`reset` at a shot cut,
    :meth:`close` at the end (it releases the detector); :meth:`still` searches one image with
    every tile size. It follows nothing; only an image of a sequence shares the record of weak
    border spots found empty (:meth:`_recover`) with the searches before and after it.
    """

    def __init__(self, config: LandmarkerConfig, bundle: LandmarkerBundle, landmark_boxes: LandmarkBoxes) -> None:
        self.config = config
        self._bundle = bundle
        self._landmark_boxes = landmark_boxes
        self._detector: TiledFaceDetector | None = None
        self._last_search: dict[int, float] = {}  # tile side (px) -> clip time it last ran
        self._last_direct = 0
        self._followed: list[NDArray[np.float32]] = []  # boxes of the faces recovered last frame
        # regions of border detections the last run could not confirm (a face coming in)
        self._pending: list[NDArray[np.float32]] = []
        # border spots tried and not confirmed: (box, run), skipped for BORDER_BACKOFF_RUNS
        self._rejected: list[tuple[NDArray[np.float32], int]] = []
        self._runs = 0

    def close(self) -> None:
        """Release the detector (idempotent)."""
        detector, self._detector = self._detector, None
        if detector is not None:
            detector.close()

    def reset(self) -> None:
        """Forget what was found and when each tile size ran (a shot cut): every size runs on the
        next frame and nothing is followed."""
        self._last_search = {}
        self._last_direct = 0
        self._followed = []
        self._pending = []
        self._rejected = []

    def video_frame(self, frame: Frame, image: NDArray[np.uint8], faces: list[FaceObservation]) -> list[FaceObservation]:
        """The faces to add to what the full-frame landmarker found on this video frame.

        Args:
            frame: the frame (its size and time set the tiles and their cadence).
            image: ``frame.image`` as a C-contiguous array.
            faces: the full-frame landmarker's faces on it (distinct).

        Returns:
            ``Source.RECOVERED`` observations (followed faces first, then newly found ones), so
            that ``faces`` plus them number at most ``config.num_faces``.
        """
        direct = len(faces)
        more: list[FaceObservation] = []
        if len(faces) < self.config.num_faces:
            sides, largest = self._due_sides(frame, direct)
            # Border spots (weak detections at the edge) come from the largest tiles only: when
            # those run now, they look at the spots again themselves.
            largest_due = bool(sides) and sides[0] == largest
            follow = self._followed + ([] if largest_due else self._pending)
            if follow:
                more = self._landmark_boxes(image, frame.index, faces, follow, self.config.recovery.region_margin)
            if sides and len(faces) + len(more) < self.config.num_faces:
                more += self._recover(image, frame.index, [*faces, *more], sides)
        self._last_direct = direct
        self._followed = [f.box for f in [*faces, *more] if f.source == Source.RECOVERED]
        return more

    def still(self, image: NDArray[np.uint8], frame_index: int, faces: list[FaceObservation], *,
              sequence: bool = False) -> list[FaceObservation]:
        """The faces every tile size finds on a still image that ``faces`` do not hold.

        Args:
            sequence: the image is the next frame of a clip read in order (``"image"`` running
                mode): like a video frame, it skips the weak border spots the frames before it
                found empty, and adds its own. Any other image is searched on its own: what was
                searched before cannot change its faces (a reference still, a re-read frame).
        """
        if len(faces) >= self.config.num_faces:
            return []
        return self._recover(image, frame_index, faces, remember=sequence)

    def _due_sides(self, frame: Frame, direct: int) -> tuple[list[int], int]:
        """The tile sides the tiled detector runs on this video frame (see
        ``LandmarkerConfig.recovery_interval_s``), marked as run now, and the largest side."""
        now = frame.time if frame.pts is not None else float(frame.index)
        sides = tile_sides(frame.height, frame.width, self.config.recovery)
        due = []
        for side in sides:
            last = self._last_search.get(side)
            interval = self.config.recovery_interval_s * (sides[0] / side) ** 2
            if side != sides[0] and self.config.small_tile_interval_s is not None:
                interval = self.config.small_tile_interval_s
            lost = side == sides[0] and direct < self._last_direct  # a full-frame face just lost
            if last is None or lost or not now - last < interval or now < last:
                due.append(side)
                self._last_search[side] = now
        return due, sides[0]

    def _recover(
        self, image: NDArray[np.uint8], frame_index: int, found: list[FaceObservation],
        sides: list[int] | None = None, *, remember: bool = True,
    ) -> list[FaceObservation]:
        """Faces the tiled detector finds (tiles of ``sides`` pixels, default all) that ``found``
        does not hold, landmarked on crops around the detections. With ``remember`` the search
        skips the weak border spots earlier runs found empty and records its own; without, it
        neither reads nor changes that record."""
        cfg = self.config.recovery
        if self._detector is None:
            self._detector = TiledFaceDetector(self._bundle, cfg)
        detections = self._detector.detect(image, sides)
        if remember:
            self._runs += 1
            self._rejected = [(b, r) for b, r in self._rejected if self._runs - r <= BORDER_BACKOFF_RUNS]
            # A weak border detection at a spot tried lately without a face there is clutter at
            # the edge (a guitar, a textured wall): not tried again for a while.
            detections = [det for det in detections if det[4] >= cfg.min_detection_confidence
                          or not any(box_iou(det[:4], b) >= BORDER_SPOT_IOU for b, _ in self._rejected)]
        more = self._landmark_boxes(image, frame_index, found, (det[:4] for det in detections), cfg.detection_margin)
        if remember:
            self._remember_border_spots(detections, [*found, *more], image.shape[:2])
        return more

    def _remember_border_spots(self, detections: Iterable[NDArray[np.float32]], known_faces: list[FaceObservation],
                               shape: tuple[int, int]) -> None:
        """Follow this run's weak border detections without a face to the next frames, and set
        aside for a while the spots followed since the last run that still have none."""
        cfg = self.config.recovery
        height, width = shape
        # A face coming in across the border is found by the detector, at a low score, before the
        # landmarker can place it: look around it again on the next frames (until the next run).
        # One that was already there, unconfirmed, at the previous run is not followed again (a
        # guitar at the edge of ghost_2person scores 0.15-0.21 all along): the runs still retry it.
        known = [f.box for f in known_faces]

        def faceless(box: NDArray[np.floating]) -> bool:  # no face found there
            return not is_duplicate(box, known) and not any(box_covered(box, k) >= cfg.covered_fraction for k in known)

        grow = cfg.detection_margin / cfg.region_margin
        previous = self._pending
        weak = [det for det in detections
                if det[4] < cfg.min_detection_confidence and touches_border(det[:4], height, width)]
        self._pending = [box for box in (grown(det[:4], grow) for det in weak)
                         if faceless(box) and not any(box_iou(box, p) >= 0.5 for p in previous)]
        # Spots followed since the last run and still without a face are rejected for a while.
        self._rejected.extend((box, self._runs) for box in previous if faceless(box))
