"""Ground-truth clips for the tracking benchmark: real stills moved by known homographies.

Every frame is a still warped by ``frame_trans_still`` (``plugin.demo.motion_homographies``), so a
point ``p`` of the still lands at ``frame_trans_still[i] @ p`` in frame ``i``. The still's
landmarks (the ground truth before mapping) come from the landmarker in IMAGE mode, averaged
over slightly scaled and shifted copies of the still; they carry the still's own detection error,
a fixed offset in still coordinates.

Also the two measures against such truth (in inter-ocular units). Used by ``bench/track_quality.py``;
not a script of its own.
"""

from __future__ import annotations

import itertools
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from numpy.typing import NDArray

# The repository root goes first, ahead of bench/ (no bench script may share a package's name).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.demo import MotionSettings, astronaut_image, motion_homographies, render_motion_frames  # noqa: E402
from plugin.video import VideoReader  # noqa: E402
from tracking.frame import Frame  # noqa: E402
from tracking.landmarker import Landmarker, LandmarkerConfig  # noqa: E402
from tracking.smoothing import inter_ocular  # noqa: E402

FPS = 25
TIME_BASE = Fraction(1, FPS)
#: Ground truth: the still detected on copies scaled by these factors about the face centre ...
GT_SCALES = (1.0, 0.97, 1.03)
#: ... and shifted by these offsets (pixels): none, sub-pixel, whole and a half pixels.
GT_SHIFTS = ((0.0, 0.0), (0.5, 0.5), (-1.5, 1.0))


def still_landmarker() -> Landmarker:
    """An IMAGE-mode landmarker for one face, without recovery (use with ``with``)."""
    return Landmarker(LandmarkerConfig(running_mode="image", num_faces=1, recover_missing=False))


def read_rgb(path: Path) -> NDArray[np.uint8]:
    """An image file as ``(H, W, 3)`` uint8 RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: cannot read")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def face_centre(lm: NDArray[np.floating]) -> tuple[float, float]:
    """Midpoint between the eyes' centre and the mouth's centre of ``(478, 2+)`` pixel landmarks."""
    eyes = (lm[33, :2] + lm[133, :2] + lm[362, :2] + lm[263, :2]) / 4.0
    mouth = (lm[13, :2] + lm[14, :2]) / 2.0
    c = (eyes + mouth) / 2.0
    return float(c[0]), float(c[1])


def still_truth(still: NDArray[np.uint8], copies: int) -> dict[str, Any]:
    """The still's 2-D landmarks, averaged over IMAGE-mode detections of ``copies`` copies.

    Copy ``k`` is the still scaled by ``GT_SCALES`` about the face centre and shifted by
    ``GT_SHIFTS`` (bilinear, mirrored border); its landmarks are mapped back to still pixels.

    Args:
        still: ``(H, W, 3)`` uint8 RGB.
        copies: how many copies (at most ``len(GT_SCALES) * len(GT_SHIFTS)``; the first is the
            still itself).

    Returns:
        ``landmarks`` ``(478, 2)`` float64 still pixels (x right, y down, pixel-centre origin);
        ``iod_px``; ``copies`` found; ``copies_spread_iod`` (mean distance of a copy's landmarks
        to the average, in inter-ocular units: the landmarker's noise on near-identical input);
        ``single_vs_average_iod`` (the plain still's detection against the average);
        ``pose_deg`` (yaw, pitch, roll of the plain still).

    Raises:
        RuntimeError: no face in the still.
    """
    h, w = still.shape[:2]
    found = []
    with still_landmarker() as lm:
        first = lm.detect_image(still)
        if not first:
            raise RuntimeError("no face found in the still")
        single = first[0].landmarks[:, :2].astype(np.float64)
        cx, cy = face_centre(single)
        for s, (dx, dy) in itertools.islice(itertools.product(GT_SCALES, GT_SHIFTS), copies):
            copy_trans_still = np.array([[s, 0, cx + dx - s * cx], [0, s, cy + dy - s * cy]])
            img = cv2.warpAffine(still, copy_trans_still, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT101)
            obs = lm.detect_image(img)
            if obs:
                pts = obs[0].landmarks[:, :2].astype(np.float64)
                found.append((pts - copy_trans_still[:, 2]) / s)
    stack = np.stack(found)
    mean = stack.mean(axis=0)
    iod = float(inter_ocular(mean[None])[0])
    return {
        "landmarks": mean, "iod_px": iod, "copies": len(found),
        "copies_spread_iod": float(np.linalg.norm(stack - mean, axis=2).mean() / iod),
        "single_vs_average_iod": float(np.linalg.norm(single - mean, axis=1).mean() / iod),
        "pose_deg": [round(first[0].yaw, 2), round(first[0].pitch, 2), round(first[0].roll, 2)],
    }


def map_points(homs: NDArray[np.float64], pts: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(N, K, 2)`` frame pixels: ``(K, 2)`` still pixels mapped by ``(N, 3, 3)`` frame_trans_still."""
    p = np.einsum("nij,kj->nki", homs, np.c_[pts, np.ones(len(pts))])
    return p[..., :2] / p[..., 2:]


def second_diff_norm(x: NDArray[np.float64], mid: NDArray[np.intp], iod: NDArray[np.float64]) -> float:
    """Mean over rows ``mid`` and points of |x[i+1] - 2 x[i] + x[i-1]| / iod[i].

    Args:
        x: ``(N, K, 2)`` pixels; mid: row indices with both neighbours valid; iod: ``(N,)`` pixels.
    """
    if mid.size == 0:
        return float("nan")
    d2 = x[mid + 1] - 2.0 * x[mid] + x[mid - 1]
    return float((np.linalg.norm(d2, axis=2).mean(axis=1) / iod[mid]).mean())


def mean_error(p: NDArray[np.float64], t: NDArray[np.float64], iod: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(N,)`` mean over points of |p - t| / iod."""
    return np.linalg.norm(p - t, axis=2).mean(axis=1) / iod


def shifted(homs: NDArray[np.float64], dx: float, dy: float) -> NDArray[np.float64]:
    """``homs`` followed by a translation of (dx, dy) frame pixels."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]]) @ homs


def frames_of(images: list[NDArray[np.uint8]]) -> list[Frame]:
    """Frames with pts = index in a 1/25 s time base."""
    return [Frame(i, i, TIME_BASE, img) for i, img in enumerate(images)]


def encode_h264(images: list[NDArray[np.uint8]], path: Path, crf: int, preset: str = "veryfast") -> None:
    """Write ``images`` (RGB, even sizes) to ``path`` as libx264 yuv420p at 25 fps."""
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": str(crf), "preset": preset}
        for i, img in enumerate(images):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, TIME_BASE
            out.mux(s.encode(vf))
        out.mux(s.encode(None))


def h264_frames(images: list[NDArray[np.uint8]], path: Path, crf: int) -> list[Frame]:
    """``images`` through an H.264 encode (:func:`encode_h264`) and ``VideoReader`` decode."""
    encode_h264(images, path, crf)
    with VideoReader(path) as reader:
        return list(reader)


def wide_frames(height: int, num_frames: int, crop: int | None = None) -> list[NDArray[np.uint8]]:
    """The moving astronaut, 80% of the frame height, in a 16:9 frame with a moving texture
    behind it (as ``bench/passthrough.py`` makes its clip).

    Args:
        height: frame height (the width is 16:9, even).
        num_frames: clip length (one cycle of the default motion).
        crop: None for the whole 512x512 portrait (inter-ocular distance about 3.6% of the frame
            width), or the side of a square cut around the face from each moving frame before
            scaling (256: about 7%).
    """
    width = (height * 16 // 9) // 2 * 2
    still = astronaut_image()
    with still_landmarker() as lm:
        centre = face_centre(lm.detect_image(still)[0].landmarks)
    faces = render_motion_frames(still, motion_homographies((512, 512), centre, MotionSettings(num_frames=num_frames)))
    if crop is not None:
        x0 = int(np.clip(round(centre[0] - crop / 2), 0, 512 - crop))
        y0 = int(np.clip(round(centre[1] - crop / 2), 0, 512 - crop))
        faces = [f[y0:y0 + crop, x0:x0 + crop] for f in faces]
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    side = int(height * 0.8) // 2 * 2
    x0, y0 = width // 3, (height - side) // 2
    out = []
    for i, face in enumerate(faces):
        img = np.roll(texture, 4 * i, axis=1).copy()
        img[y0:y0 + side, x0:x0 + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
        out.append(img)
    return out
