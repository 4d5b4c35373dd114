"""Recovering faces the full-frame landmarker missed: detect on tiles, crop, upscale, re-run.

The landmarker finds faces with MediaPipe's short-range face detector run on the whole frame
letterboxed to 128x128 pixels, so a face that is small relative to the frame (a wide shot, one
side of a split screen) is often missed. This module supplies the pieces the
:class:`tracking.landmarker.Landmarker` combines to recover such faces:

* :class:`TiledFaceDetector` runs the bundle's ``face_detector.tflite`` (MediaPipe FaceDetector
  task) on overlapping square tiles, so each face is seen at a larger scale than in the
  letterboxed whole frame, and merges the detections;
* :func:`crop_transform`, :func:`crop_image` and :func:`map_points_to_frame` cut an
  axis-aligned, upscaled square crop around a box and map the landmarks found in it back to
  frame coordinates (the facial transformation matrix is then recomputed for the frame's
  virtual camera with :func:`tracking.pose.transform_from_landmarks`).

Coordinates are frame pixels, x right, y down, origin at the centre of the top-left pixel; boxes
are ``(x0, y0, x1, y1)`` float32. ``crop_trans_frame`` is a ``(2, 3)`` affine mapping frame
coordinates to crop coordinates (a uniform scale and a shift, no rotation).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.bundle import FACE_DETECTOR_MEMBER, LandmarkerBundle
from tracking.errors import ConfigError, ModelLoadError

@dataclass(frozen=True)
class RecoveryConfig:
    """Settings for recovering missed faces.

    Attributes:
        min_detection_confidence: detector score below which a tile detection is dropped.
            Higher than MediaPipe's usual 0.5 because a false detection here becomes a face:
            on the split-screen fixture (264 frames) real faces scored 0.92 to 0.97 and false
            ones (a hand on a guitar, posters) at most 0.66.
        tile_scales: side of the square detector tiles as fractions of the frame's shorter side.
            The detector (BlazeFace, short range, 128x128 input) finds a face from about a fifth
            of its tile: tiles of the whole shorter side (1.0; one tile for a square frame, three
            for 16:9) find faces from about a fifth of the frame's height, 0.5 from a tenth and
            0.25 from a twentieth. Each call costs about 2 ms whatever the tile's size, and the
            number of tiles grows as ``1 / scale**2`` (1080p: 3, 21 and 98 tiles), so in video
            the smaller scales run less often (``LandmarkerConfig.recovery_interval_s``).
        min_tile_px: smallest tile side in pixels: a smaller scale's tiles are made this large
            (a face under about a fifth of it, ~40 px, is too small for useful landmarks anyway,
            and a 224-pixel clip would otherwise run 49 tiles of 56 pixels).
        tile_overlap: fraction by which neighbouring tiles overlap, in [0, 0.9].
        nms_iou: detections from different tiles with at least this IoU are the same face.
        covered_fraction: a detection counts as already found when at least this fraction of
            its box lies inside the box of a face the landmarker returned (the detector's box is
            the inner face, the landmark box the whole face, so IoU would under-count).
        detection_margin: side of the crop around a detector box, in units of the box's larger
            side (the detector's box spans brows to mouth, so about 2 holds the whole head).
        region_margin: side of the crop around a caller's box (for example a landmark box
            predicted from the previous frame), in units of that box's larger side.
        crop_size: side in pixels the crop is resampled to before the landmarker sees it.
        crop_num_faces: most faces the landmarker looks at on one crop. A crop is centred on
            one face; the best of these that covers its box is kept. The landmark model runs on
            every candidate the crop's detector returns, so on clutter (a textured wall at the
            picture's edge, at the border threshold) a crop run with ``num_faces`` 8 cost
            35-41 ms against 19 with 2 (bench/perf.py's 1080p clip), and found no face either
            way. Two, so that a neighbour scoring higher than the face itself cannot hide it.
        border_detection_confidence: detector score from which a detection that touches the
            frame's edge is kept (a face cut by the border scores low: 0.16 to 0.37 for faces
            35-65% inside the picture on liveportrait_d0, against 0.8 and more whole). Such a
            detection becomes a face only if the landmarker then finds one on the (mirrored)
            crop around it, so a false one costs a crop run, not a false face.
        border_crop_detection_confidence: MediaPipe's face detection threshold for a second
            landmarker run on a crop that reaches past the frame's edge, when the first (at the
            landmarker's own threshold) found nothing there. MediaPipe's detector misses most
            faces cut by the border in half, yet its landmark model, given the face's region,
            places the visible landmarks well: on liveportrait_d0 slid 35-65% out of the frame,
            0.5 found none of the faces under 60% inside, 0.1 found every face at least 43%
            inside, visible landmarks within 0.02-0.06 inter-ocular distances of the uncut face's.
            The landmark model's presence threshold still has to pass.
        min_inside_fraction: a face found on a crop is kept only when at least this fraction of
            its mesh landmarks lies inside the frame (less is mostly a guess).
        min_visible_px: a face found on a crop past the frame's edge (at the low threshold) is
            kept only when the part of its box inside the frame is at least this many pixels
            wide and high: in a frame smaller than a face (a 33x17 clip) the low threshold found
            a "face" in a colour pattern.
    """

    min_detection_confidence: float = 0.75
    tile_scales: tuple[float, ...] = (1.0, 0.5, 0.25)
    min_tile_px: int = 192
    tile_overlap: float = 0.5
    nms_iou: float = 0.3
    covered_fraction: float = 0.5
    detection_margin: float = 2.2
    region_margin: float = 1.6
    crop_size: int = 256
    crop_num_faces: int = 2
    border_detection_confidence: float = 0.15
    border_crop_detection_confidence: float = 0.1
    min_inside_fraction: float = 0.3
    min_visible_px: float = 24.0

    def __post_init__(self) -> None:
        for name in ("min_detection_confidence", "border_detection_confidence", "border_crop_detection_confidence",
                     "min_inside_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if not self.tile_scales or any(not 0.1 <= s <= 1.0 for s in self.tile_scales):
            raise ConfigError(f"tile_scales must be non-empty fractions in [0.1, 1], got {self.tile_scales}")
        if not 16 <= self.min_tile_px <= 4096:
            raise ConfigError(f"min_tile_px must be in [16, 4096], got {self.min_tile_px}")
        if not 0.0 <= self.tile_overlap <= 0.9:
            raise ConfigError(f"tile_overlap must be in [0, 0.9], got {self.tile_overlap}")
        for name in ("nms_iou", "covered_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"{name} must be in (0, 1], got {value}")
        for name in ("detection_margin", "region_margin"):
            value = getattr(self, name)
            if not 1.0 <= value <= 6.0:
                raise ConfigError(f"{name} must be in [1, 6], got {value}")
        if not 1 <= self.crop_num_faces <= 16:
            raise ConfigError(f"crop_num_faces must be in [1, 16], got {self.crop_num_faces}")
        if not 64 <= self.crop_size <= 1024:
            raise ConfigError(f"crop_size must be in [64, 1024] pixels, got {self.crop_size}")


# --- boxes --------------------------------------------------------------------------------------


def box_area(box: NDArray[np.floating]) -> float:
    """Area of an ``(x0, y0, x1, y1)`` box (0 if empty)."""
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def box_intersection(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Area of the intersection of two ``(x0, y0, x1, y1)`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return float(max(0.0, w) * max(0.0, h))


def box_iou(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Intersection over union of two boxes, in [0, 1]."""
    inter = box_intersection(a, b)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def box_covered(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Fraction of box ``a``'s area that lies inside box ``b``, in [0, 1]."""
    area = box_area(a)
    return box_intersection(a, b) / area if area > 0 else 0.0


# --- the tiled detector -------------------------------------------------------------------------


def tile_origins(height: int, width: int, side: int, overlap: float) -> list[tuple[int, int]]:
    """Top-left corners of square tiles of ``side`` pixels covering an image, edges included.

    Args:
        height, width: image size in pixels.
        side: tile side in pixels (clamped to the shorter image side).
        overlap: fraction of ``side`` that neighbouring tiles share.

    Returns:
        ``(x, y)`` pixel origins, row by row.
    """
    side = max(1, min(side, height, width))
    step = max(1, int(round(side * (1.0 - overlap))))

    def starts(extent: int) -> list[int]:
        last = extent - side
        out = list(range(0, last + 1, step))
        if out[-1] != last:
            out.append(last)
        return out

    return [(x, y) for y in starts(height) for x in starts(width)]


#: A detector tile whose sampled pixels (every eighth row and column) span at most this many
#: levels in every channel is flat and skipped (a bar of a vertical clip pillarboxed in 16:9 holds
#: two thirds of the small tiles).
FLAT_TILE_LEVELS = 6


def tile_sides(height: int, width: int, config: RecoveryConfig) -> list[int]:
    """The distinct tile sides (pixels, largest first) of ``config.tile_scales`` on a frame:
    each scale times the shorter side, at least ``config.min_tile_px``, at most the shorter side."""
    short = min(height, width)
    sides = {min(short, max(config.min_tile_px, int(round(short * scale)))) for scale in config.tile_scales}
    return sorted((max(1, side) for side in sides), reverse=True)


class TiledFaceDetector:
    """MediaPipe's short-range face detector run on overlapping square tiles of a frame.

    A context manager: ``close()`` (or leaving the ``with`` block) releases the MediaPipe task.
    """

    def __init__(self, bundle: LandmarkerBundle, config: RecoveryConfig) -> None:
        """Create the detector from the bundle's ``face_detector.tflite``.

        Raises:
            ModelLoadError: MediaPipe cannot load the detector model.
        """
        from mediapipe.tasks.python import BaseOptions, vision

        self.config = config
        self.tiles_run = 0
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=bundle.read_member(FACE_DETECTOR_MEMBER)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=min(config.min_detection_confidence, config.border_detection_confidence),
            min_suppression_threshold=0.3,
        )
        try:
            self._detector = vision.FaceDetector.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            detail = " ".join(str(exc).split())
            raise ModelLoadError(
                f"landmarker bundle {bundle.path}: cannot load {FACE_DETECTOR_MEMBER}: {detail}"
            ) from exc

    def __enter__(self) -> TiledFaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe task (idempotent)."""
        detector, self._detector = getattr(self, "_detector", None), None
        if detector is not None:
            detector.close()

    def detect(self, image: NDArray[np.uint8], sides: list[int] | None = None) -> NDArray[np.float32]:
        """Find faces on every tile and merge duplicates.

        Args:
            image: ``(H, W, 3)`` uint8 RGB frame.
            sides: the tile sides (pixels) to run, a subset of :func:`tile_sides` (default: all).

        A tile that is flat (every eighth pixel within ``FLAT_TILE_LEVELS`` levels in each
        channel: a letterbox or pillarbox bar, a blank wall) cannot hold a face and is skipped;
        ``tiles_run`` counts the tiles the detector did see.

        A detection scoring below ``min_detection_confidence`` is kept only when it touches the
        frame's edge, scores at least ``border_detection_confidence`` (a face cut by the border)
        and comes from the largest tiles: on smaller ones, clutter at the edge (a guitar, a glass
        on ghost_2person) scores that much too, and the low-threshold crop re-run then made a
        face of it.

        Returns:
            ``(N, 5)`` float32 rows ``(x0, y0, x1, y1, score)`` in frame pixels, best score first.
        """
        import mediapipe as mp

        if self._detector is None:
            raise RuntimeError("TiledFaceDetector is closed")
        height, width = image.shape[:2]
        rows: list[tuple[float, float, float, float, float]] = []
        every = tile_sides(height, width, self.config)
        largest = every[0]
        for side in every if sides is None else sides:
            border_floor = self.config.border_detection_confidence if side == largest else np.inf
            for x, y in tile_origins(height, width, side, self.config.tile_overlap):
                view = image[y : y + side, x : x + side]
                if int(np.ptp(view[::8, ::8].reshape(-1, 3), axis=0).max()) <= FLAT_TILE_LEVELS:
                    continue
                self.tiles_run += 1
                tile = np.ascontiguousarray(view)
                result = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=tile))
                for det in result.detections:
                    bb = det.bounding_box
                    score = float(det.categories[0].score) if det.categories else 0.0
                    x0, y0 = x + bb.origin_x, y + bb.origin_y
                    row = (x0, y0, x0 + bb.width, y0 + bb.height, score)
                    if score >= self.config.min_detection_confidence or (
                        score >= border_floor
                        and touches_border(np.asarray(row[:4]), height, width)
                    ):
                        rows.append(row)
        if not rows:
            return np.zeros((0, 5), dtype=np.float32)
        boxes = np.asarray(sorted(rows, key=lambda r: -r[4]), dtype=np.float32)
        keep: list[int] = []
        for i in range(len(boxes)):
            if all(box_iou(boxes[i], boxes[j]) < self.config.nms_iou for j in keep):
                keep.append(i)
        return boxes[keep]


# --- crops --------------------------------------------------------------------------------------


def crop_transform(box: NDArray[np.floating], margin: float, crop_size: int) -> NDArray[np.float64]:
    """The affine ``crop_trans_frame`` of a square crop centred on a box.

    The crop's side in frame pixels is ``margin * max(box width, box height)``; it is resampled
    to ``crop_size`` pixels. It may extend past the frame (the outside is filled black).

    Args:
        box: ``(4,)`` ``(x0, y0, x1, y1)`` frame pixels.
        margin: crop side over the box's larger side.
        crop_size: crop side in pixels.

    Returns:
        ``(2, 3)`` float64 affine, frame pixel coordinates to crop pixel coordinates (both with
        the origin at the centre of the top-left pixel).
    """
    cx = 0.5 * (float(box[0]) + float(box[2]))
    cy = 0.5 * (float(box[1]) + float(box[3]))
    side = max(float(box[2]) - float(box[0]), float(box[3]) - float(box[1]), 1.0) * margin
    s = crop_size / side
    c = 0.5 * (crop_size - 1)
    return np.array([[s, 0.0, c - s * cx], [0.0, s, c - s * cy]], dtype=np.float64)


def crop_image(image: NDArray[np.uint8], crop_trans_frame: NDArray[np.float64], crop_size: int) -> NDArray[np.uint8]:
    """Resample the crop: ``(crop_size, crop_size, 3)`` uint8 RGB, black outside the frame."""
    return cv2.warpAffine(
        image,
        crop_trans_frame,
        (crop_size, crop_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def crop_leaves_frame(crop_trans_frame: NDArray[np.float64], crop_size: int, height: int, width: int) -> bool:
    """Whether the square crop reaches past the frame's edges (more than half a pixel)."""
    s = float(crop_trans_frame[0, 0])
    x0 = -float(crop_trans_frame[0, 2]) / s
    y0 = -float(crop_trans_frame[1, 2]) / s
    side = (crop_size - 1) / s
    return x0 < -0.5 or y0 < -0.5 or x0 + side > width - 0.5 or y0 + side > height - 0.5


def touches_border(box: NDArray[np.floating], height: int, width: int, slack: float = 1.0) -> bool:
    """Whether an ``(x0, y0, x1, y1)`` box reaches within ``slack`` pixels of the frame's edge."""
    return bool(box[0] <= slack or box[1] <= slack or box[2] >= width - 1 - slack or box[3] >= height - 1 - slack)


def inside_fraction(points: NDArray[np.floating], height: int, width: int) -> float:
    """Fraction of ``(K, >=2)`` pixel points ``(x, y)`` that lie inside the frame, in [0, 1]."""
    x, y = points[:, 0], points[:, 1]
    inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    return float(inside.mean()) if len(points) else 0.0


def map_points_to_frame(points: NDArray[np.float32], crop_trans_frame: NDArray[np.float64]) -> NDArray[np.float32]:
    """Map ``(K, 3)`` crop-pixel landmarks ``(x, y, z)`` back to frame pixels.

    x and y go through the inverse affine; z (in crop pixels, like x) is divided by the crop's
    scale, so it stays in the same pixel units as x in the frame.
    """
    s = float(crop_trans_frame[0, 0])
    out = np.empty_like(points, dtype=np.float32)
    out[:, 0] = (points[:, 0] - crop_trans_frame[0, 2]) / s
    out[:, 1] = (points[:, 1] - crop_trans_frame[1, 2]) / s
    out[:, 2] = points[:, 2] / s
    return out
