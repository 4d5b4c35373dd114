"""The MediaPipe boundary: run the face landmarker and convert its results to FaceObservations.

Nothing past this module sees a MediaPipe type. Per face the landmarker gives 478 landmarks
(468 mesh points and 10 iris points) in normalized image coordinates, 52 blendshape scores and a
4x4 facial transformation matrix; :class:`Landmarker` turns them into
:class:`tracking.observation.FaceObservation` records in frame pixels and, when the landmarker
returns fewer faces than it may, recovers missed faces with a tiled detector and a re-run of
the landmarker on an upscaled crop (:mod:`tracking.recovery`; when to search and what to follow
from frame to frame: :mod:`tracking.search`). The results' pixel convention and confidence:
:mod:`tracking.mediapipe_results`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracking.bundle import load_bundle
from tracking.errors import ConfigError, ModelLoadError
from tracking.frame import Frame
from tracking.observation import NUM_MESH_LANDMARKS, FaceObservation, Source
from tracking.geometry import CanonicalMesh, mesh_of_bundle
from tracking.mediapipe_results import observation_from_pixels, observations_from_result
from tracking.pose import transform_from_landmarks
from tracking.recovery import (
    RecoveryConfig,
    box_covered,
    crop_image,
    crop_leaves_frame,
    crop_transform,
    inside_fraction,
    map_points_to_frame,
)
from tracking.search import MissedFaceSearch, is_duplicate

#: Threads the crop re-runs of one frame share (several faces found by the search are followed
#: by one crop each): on bench/robustness.py's six-person mosaic, four such faces a frame.
CROP_THREADS = 2

RUNNING_MODES = ("video", "image")

@dataclass(frozen=True)
class LandmarkerConfig:
    """Settings of the face landmarker stage.

    Attributes:
        num_faces: most faces returned per frame (MediaPipe's ``num_faces``; recovery stops there).
            The cost follows the faces present, not this bound (1 or 2 faces: the same ms a frame
            with 4 or 8), so it is set for a group or a stage: 8.
        min_detection_confidence: MediaPipe's face detector threshold.
        min_presence_confidence: MediaPipe's face presence threshold for the landmark model.
        min_tracking_confidence: MediaPipe's threshold for keeping a face tracked between video
            frames (VIDEO mode) instead of detecting it again.
        running_mode: ``"video"`` (``detect`` tracks across frames; timestamps from pts) or
            ``"image"`` (every frame detected independently). ``detect_image`` is always IMAGE.
        bundle_path: landmarker bundle, or None for ``DELTAFACE_LANDMARKER_BUNDLE`` or the
            packaged bundle (see :mod:`tracking.bundle`).
        recover_missing: when fewer than ``num_faces`` faces are found, look for more with the
            tiled detector and re-run the landmarker on crops (see :mod:`tracking.recovery`).
        recovery: settings of that recovery.
        recovery_interval_s: in ``"video"`` mode, how often (seconds of the clip) the tiled
            detector's largest tiles look for faces the landmarker misses. Smaller tiles run
            less often, every ``recovery_interval_s * (largest side / their side) ** 2`` (each
            size gets the same detector time per second of clip: at 1080p the 1.0, 0.5 and 0.25
            tiles run every 0.2, 0.8 and 3.2 s). Every size runs on the first frame and after
            :meth:`Landmarker.reset` (a shot cut), so a shot's faces are found from its first
            frame; the interval only delays finding a face that enters mid-shot. The largest
            tiles also run whenever the landmarker finds fewer faces than in the previous frame
            (a face just lost). A face recovered in the previous frame is looked for around its
            box first, with the crop re-run alone (a face too small for the full-frame pass
            would otherwise run the tiled detector on every frame); the tracker also re-runs
            around predicted boxes (:meth:`Landmarker.detect_in_regions`). 0 runs every tile
            size on every frame. ``detect_image`` always runs every tile size.
        small_tile_interval_s: when set, the tiles smaller than the largest run every this many
            seconds instead (faster discovery of small faces entering mid-shot, at more cost).
    """

    num_faces: int = 8
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    running_mode: str = "video"
    bundle_path: str | None = None
    recover_missing: bool = True
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    recovery_interval_s: float = 0.2
    small_tile_interval_s: float | None = None

    def __post_init__(self) -> None:
        if not self.recovery_interval_s >= 0:
            raise ConfigError(f"recovery_interval_s must be >= 0, got {self.recovery_interval_s}")
        if self.small_tile_interval_s is not None and not self.small_tile_interval_s >= 0:
            raise ConfigError(f"small_tile_interval_s must be >= 0 or None, got {self.small_tile_interval_s}")
        if not 1 <= self.num_faces <= 16:
            raise ConfigError(f"num_faces must be in [1, 16], got {self.num_faces}")
        for name in ("min_detection_confidence", "min_presence_confidence", "min_tracking_confidence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.running_mode not in RUNNING_MODES:
            raise ConfigError(f"running_mode must be one of {RUNNING_MODES}, got {self.running_mode!r}")
        if self.bundle_path is not None:
            object.__setattr__(self, "bundle_path", os.fspath(self.bundle_path))
        if not isinstance(self.recovery, RecoveryConfig):
            raise ConfigError(f"recovery must be a RecoveryConfig, got {type(self.recovery).__name__}")


def pull_inside(box: NDArray[np.floating], height: int, width: int) -> NDArray[np.float32]:
    """``box`` shifted back towards the frame until at least half its width and height are inside.

    A lost face predicted past the frame's edge (its velocity carried on) is looked for where it
    would come back in: a face that left the picture re-enters across the same edge, and one
    still in it stays near its last position.
    """
    out = np.asarray(box, dtype=np.float32).copy()
    for lo, hi, size in ((0, 2, width), (1, 3, height)):
        half = 0.5 * (out[hi] - out[lo])
        shift = max(0.0, -half - out[lo]) - max(0.0, out[hi] - half - (size - 1))
        out[lo] += shift
        out[hi] += shift
    return out


def distinct_faces(faces: list[FaceObservation]) -> list[FaceObservation]:
    """``faces`` without those that duplicate an earlier one (see :func:`tracking.search.is_duplicate`).

    In VIDEO mode MediaPipe sometimes returns one face twice, the face it tracks from the previous
    frame and a fresh detection of it with a slightly different mesh (on ghost_2person, box tops
    13 px apart at IoU 0.8); the tracker would start a second track on the copy.
    """
    out: list[FaceObservation] = []
    for face in faces:
        if not is_duplicate(face.box, (f.box for f in out)):
            out.append(face)
    return out


class Landmarker:
    """MediaPipe's face landmarker behind deltaface's records.

    Use as a context manager (``with Landmarker(config) as lm:``): it owns MediaPipe tasks
    (a VIDEO-mode landmarker for :meth:`detect`, an IMAGE-mode one for stills, IMAGE-mode ones for
    crop re-runs on each of :data:`CROP_THREADS` threads, and the tiled detector for recovery),
    created on first use and released by :meth:`close`.

    Attributes:
        config: the settings.
        bundle: the verified model bundle.
        timestamps_adjusted: how many frames got a VIDEO-mode timestamp other than their own
            pts in milliseconds (see :meth:`detect`).
        faces_recovered: how many observations came from recovery or region re-runs.
    """

    def __init__(self, config: LandmarkerConfig | None = None) -> None:
        """Load and verify the bundle and create the landmarker task of ``config.running_mode``
        (the other tasks are created on first use).

        Raises:
            ModelLoadError: the bundle is missing, corrupt, not a landmarker bundle, or MediaPipe
                cannot load its models.
        """
        self.config = config or LandmarkerConfig()
        self.bundle = load_bundle(self.config.bundle_path)
        self._video: Any = None
        self._image: Any = None
        # Crop re-runs run on a small pool, each worker with its own IMAGE-mode tasks (few faces;
        # and the same at a low detection threshold for crops past the border).
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._crop_tasks: list[Any] = []
        self._crop_tasks_lock = threading.Lock()
        self._search = MissedFaceSearch(self.config, self.bundle, self.landmark_boxes)
        self._last_ts = -1
        self.timestamps_adjusted = 0
        self.faces_recovered = 0
        if self.config.running_mode == "video":
            self._video = self._create(video=True)
        else:
            self._image_task()

    def __enter__(self) -> Landmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every MediaPipe task (idempotent); the landmarker can be used again after."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._crop_tasks_lock:
            crop_tasks, self._crop_tasks = self._crop_tasks, []
        self._local = threading.local()
        for task in crop_tasks:
            task.close()
        for name in ("_video", "_image"):
            task = getattr(self, name)
            setattr(self, name, None)
            if task is not None:
                task.close()
        self._search.close()

    def reset(self) -> None:
        """Forget VIDEO-mode tracking (e.g. at a shot cut); timestamps keep increasing."""
        self.reset_whole()
        self.reset_search()

    def reset_whole(self) -> None:
        """Forget the whole-frame landmarker's tracking (:meth:`detect_whole`'s state)."""
        if self._video is not None:
            self._video.close()
            self._video = None

    def reset_search(self) -> None:
        """Look for every face again, with every tile size (:meth:`search_missed`'s state)."""
        self._search.reset()

    # --- MediaPipe tasks -------------------------------------------------------------------

    def _create(self, video: bool, detection_confidence: float | None = None, num_faces: int | None = None) -> Any:
        from mediapipe.tasks.python import BaseOptions, vision

        cfg = self.config
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=self.bundle.data),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=cfg.num_faces if num_faces is None else num_faces,
            min_face_detection_confidence=(
                cfg.min_detection_confidence if detection_confidence is None else detection_confidence
            ),
            min_face_presence_confidence=cfg.min_presence_confidence,
            min_tracking_confidence=cfg.min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        try:
            return vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            detail = " ".join(str(exc).split())
            raise ModelLoadError(f"landmarker bundle {self.bundle.path}: MediaPipe cannot load it: {detail}") from exc

    def _image_task(self) -> Any:
        if self._image is None:
            self._image = self._create(video=False)
        return self._image

    def _crop_task(self, past_edge: bool) -> Any:
        """This thread's IMAGE-mode landmarker for crops around one face
        (``RecoveryConfig.crop_num_faces``), at the low detection threshold for crops past the
        frame's edge."""
        name = "border" if past_edge else "crop"
        task = getattr(self._local, name, None)
        if task is None:
            rec = self.config.recovery
            task = self._create(video=False, num_faces=rec.crop_num_faces,
                                detection_confidence=rec.border_crop_detection_confidence if past_edge else None)
            setattr(self._local, name, task)
            with self._crop_tasks_lock:
                self._crop_tasks.append(task)
        return task

    def _landmark_crops(
        self, image: NDArray[np.uint8], boxes: list[NDArray[np.floating]], margin: float, frame_index: int
    ) -> list[FaceObservation | None]:
        """:meth:`_landmark_crop` of every box, at once on :data:`CROP_THREADS` threads
        (MediaPipe releases the GIL; each thread has its own tasks, and a crop's result does not
        depend on which one ran it)."""
        if not boxes:
            return []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=CROP_THREADS, thread_name_prefix="deltaface-crops")
        runs = [self._pool.submit(self._landmark_crop, image, box, margin, frame_index) for box in boxes]
        return [run.result() for run in runs]

    def _run_image(self, image: NDArray[np.uint8], frame_index: int) -> list[FaceObservation]:
        import mediapipe as mp

        height, width = image.shape[:2]
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        return observations_from_result(self._image_task().detect(mp_image), width, height, frame_index, self.bundle)

    # --- public API ------------------------------------------------------------------------

    def detect(self, frame: Frame) -> list[FaceObservation]:
        """Find the faces in the next video frame.

        In ``"video"`` running mode MediaPipe tracks faces from the previous call, so frames must
        come in presentation order. Its VIDEO mode needs strictly increasing integer
        milliseconds: the timestamp is ``frame.timestamp_ms`` (pts in ms, rounded down); when that
        is not greater than the previous call's (two frames within one millisecond, a pts going
        backwards, a negative start time) or the frame has no pts, the previous timestamp plus
        1 ms is used instead and :attr:`timestamps_adjusted` counts it (frames without pts are
        not counted). MediaPipe uses the timestamps only for ordering here, so this changes no
        result. In ``"image"`` running mode every frame is detected independently.

        Args:
            frame: the decoded frame, ``(H, W, 3)`` uint8 RGB.

        Returns:
            Observations in frame pixels, full-frame landmarker faces first, then recovered ones
            (``Source.RECOVERED``); empty if no face. At most ``config.num_faces``.
        """
        if self.config.running_mode == "image":
            return self.detect_image(frame.image, frame.index, sequence=True)
        faces = self.detect_whole(frame)
        return faces + self.search_missed(frame, faces)

    def detect_whole(self, frame: Frame) -> list[FaceObservation]:
        """The first half of :meth:`detect` in ``"video"`` mode: MediaPipe's landmarker on the
        whole frame, with its tracking from the previous call (frames in presentation order).

        The halves keep separate state, so a caller may run this one on frame ``i + 1`` while
        :meth:`search_missed` works on frame ``i`` on another thread (``plugin.analyze`` does):
        the results are those of :meth:`detect`.
        """
        import mediapipe as mp

        if self._video is None:
            self._video = self._create(video=True)
        if frame.pts is None:
            ts = self._last_ts + 1
        else:
            ts = frame.timestamp_ms
            if ts <= self._last_ts:
                ts = self._last_ts + 1
                self.timestamps_adjusted += 1
        self._last_ts = ts
        image = np.ascontiguousarray(frame.image)
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=image)
        result = self._video.detect_for_video(mp_image, ts)
        return distinct_faces(observations_from_result(result, frame.width, frame.height, frame.index, self.bundle))

    def search_missed(self, frame: Frame, faces: list[FaceObservation]) -> list[FaceObservation]:
        """The second half of :meth:`detect`: the faces the tiled search and crop re-runs add to
        ``faces`` (what :meth:`detect_whole` found on this frame); none when
        ``config.recover_missing`` is off. Frames in presentation order."""
        if not self.config.recover_missing:
            return []
        return self._search.video_frame(frame, np.ascontiguousarray(frame.image), faces)

    def detect_image(self, image: NDArray[np.uint8], frame_index: int = 0, *,
                     search_only_if_none: bool = False, sequence: bool = False) -> list[FaceObservation]:
        """Find the faces in a still image (IMAGE mode: no tracking, no timestamps).

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            frame_index: index written into the observations.
            search_only_if_none: run the tiled search for missed faces (about 120 detector calls
                on a 1080p image) only when the whole-image pass finds no face: for callers that
                want one face (reference stills, learn-delta examples), not every face.
            sequence: ``image`` is the next frame of a clip read in order (:meth:`detect` in
                ``"image"`` running mode): the search shares what it learnt of clutter at the
                picture's edge with the frames before and after it. Otherwise the faces found
                depend on ``image`` alone.

        Returns:
            Observations in image pixels, landmarker faces first, then recovered ones.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        image = np.ascontiguousarray(image)
        faces = distinct_faces(self._run_image(image, frame_index))
        if self.config.recover_missing and not (faces and search_only_if_none):
            faces.extend(self._search.still(image, frame_index, faces, sequence=sequence))
        return faces

    def detect_in_regions(self, frame: Frame, boxes: NDArray[np.floating]) -> list[FaceObservation | None]:
        """Re-run the landmarker on an upscaled crop around each box (e.g. boxes predicted from
        the previous frame by a tracker), for faces the full-frame pass misses.

        Each crop is a square of ``recovery.region_margin`` times the box's larger side,
        resampled to ``recovery.crop_size`` pixels; of the faces found in it, the one covering
        most of the box is kept. Does not touch VIDEO-mode tracking state.

        Args:
            frame: the frame.
            boxes: ``(N, 4)`` ``(x0, y0, x1, y1)`` frame pixels.

        Returns:
            One entry per box: a ``Source.RECOVERED`` observation in frame pixels, or None when
            no face was found there. Results are not de-duplicated against each other.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        inside = [pull_inside(box, frame.height, frame.width) for box in boxes]
        found = self._landmark_crops(np.ascontiguousarray(frame.image), inside, self.config.recovery.region_margin,
                                     frame.index)
        self.faces_recovered += sum(obs is not None for obs in found)
        return found

    def _mesh(self) -> CanonicalMesh:
        return mesh_of_bundle(self.bundle)

    # --- crop re-runs ---------------------------------------------------------------------

    def landmark_boxes(
        self, image: NDArray[np.uint8], frame_index: int, found: list[FaceObservation],
        boxes: Iterable[NDArray[np.floating]], margin: float,
    ) -> list[FaceObservation]:
        """Faces the landmarker finds on crops around ``boxes`` (``margin`` times their side), in
        order, skipping boxes ``found`` faces already cover and faces that duplicate one, up to
        ``num_faces`` in all (the :class:`tracking.search.MissedFaceSearch` callable)."""
        known = [face.box for face in found]
        cover = self.config.recovery.covered_fraction
        boxes = list(boxes)
        # Every crop no found face covers runs at once; which results are kept is then decided in
        # order, as running them one after another would (a crop that a face kept before it
        # covers was run for nothing).
        todo = [i for i, box in enumerate(boxes) if not any(box_covered(box, k) >= cover for k in known)]
        runs = dict(zip(todo, self._landmark_crops(image, [boxes[i] for i in todo], margin, frame_index), strict=True))
        more: list[FaceObservation] = []
        for i, box in enumerate(boxes):
            if len(found) + len(more) >= self.config.num_faces:
                break
            if any(box_covered(box, k) >= cover for k in known):
                continue
            obs = runs[i]
            if obs is None or is_duplicate(obs.box, known):
                continue
            more.append(obs)
            known.append(obs.box)
        self.faces_recovered += len(more)
        return more

    def _landmark_crop(
        self, image: NDArray[np.uint8], box: NDArray[np.floating], margin: float, frame_index: int
    ) -> FaceObservation | None:
        size = self.config.recovery.crop_size
        height, width = image.shape[:2]
        crop_trans_frame = crop_transform(box, margin, size)
        target = np.empty(4, dtype=np.float64)
        target[:2] = crop_trans_frame[:, :2] @ box[:2] + crop_trans_frame[:, 2]
        target[2:] = crop_trans_frame[:, :2] @ box[2:] + crop_trans_frame[:, 2]
        crop = crop_image(image, crop_trans_frame, size)
        # A crop past the frame's edge may hold a face cut by the border: MediaPipe's detector
        # misses most of those, its landmark model does not (a lower detection threshold there,
        # see RecoveryConfig.border_crop_detection_confidence).
        past_edge = crop_leaves_frame(crop_trans_frame, size, height, width)
        best = self._best_in_crop(self._crop_task(past_edge), crop, target, frame_index)
        if best is None:
            return None
        landmarks = map_points_to_frame(best.landmarks, crop_trans_frame)
        if inside_fraction(landmarks[:NUM_MESH_LANDMARKS], height, width) < self.config.recovery.min_inside_fraction:
            return None
        if past_edge:
            mesh = landmarks[:NUM_MESH_LANDMARKS, :2]
            seen_w = min(float(mesh[:, 0].max()), width - 1.0) - max(float(mesh[:, 0].min()), 0.0)
            seen_h = min(float(mesh[:, 1].max()), height - 1.0) - max(float(mesh[:, 1].min()), 0.0)
            if min(seen_w, seen_h) < self.config.recovery.min_visible_px:
                return None
        # The crop's matrix is for the crop's virtual camera: recompute it for the frame's.
        matrix = transform_from_landmarks(landmarks, width, height, self._mesh())
        return observation_from_pixels(landmarks, best.blendshapes, matrix, width, height, frame_index,
                                       Source.RECOVERED)

    def _best_in_crop(
        self, task: Any, crop: NDArray[np.uint8], target: NDArray[np.float64], frame_index: int
    ) -> FaceObservation | None:
        """The face ``task`` finds in the crop that covers most of ``target`` (crop pixels), or
        None when none covers at least 30% of it (landmarks in crop pixels)."""
        import mediapipe as mp

        size = crop.shape[0]
        result = task.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=crop))
        candidates = observations_from_result(result, size, size, frame_index, self.bundle)
        if not candidates:
            return None
        best = max(candidates, key=lambda c: box_covered(target, c.box))
        return best if box_covered(target, best.box) >= 0.3 else None
