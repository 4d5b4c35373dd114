"""Preview overlays for ``deltaface track --preview``: ids, landmarks, head axes, flags.

Drawing only (OpenCV on a copy of the RGB frame); what to draw comes from the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.analysis import ClipAnalysis, Track
from tracking.frame import Frame
from tracking.observation import FaceObservation, Source

# Colours are RGB (frames are RGB throughout deltaface).
_TRACK_COLOURS = [
    (0, 200, 255), (255, 170, 0), (120, 255, 80), (255, 80, 200), (180, 120, 255), (255, 255, 90),
]
_BRIDGED = (255, 60, 60)
_AXES = ((230, 40, 40), (40, 220, 40), (60, 100, 255))  # x (subject's right->left), y (up), z (out)

#: Below this confidence a face is drawn as low-confidence (dashed box, "?").
LOW_CONFIDENCE = 0.35


@dataclass(frozen=True)
class PreviewFace:
    """One face to draw: its track id and its (smoothed) observation."""

    track_id: int
    observation: FaceObservation


def head_axes(landmarks: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Head axes from the landmarks themselves, so the drawing needs no camera model.

    Args:
        landmarks: ``(478, 3)`` pixels (x right, y down, z in the same units).

    Returns:
        ``(origin (2,), axes (3, 3))``: the nose tip in pixels, and rows = unit x (the subject's
        right eye toward their left eye), y (chin toward forehead), z (out of the face) in image
        coordinates (x right, y down, z away from the camera).
    """
    lm = landmarks.astype(np.float64)
    x = lm[263] - lm[33]
    y = lm[10] - lm[152]
    z = np.cross(x, y)
    y = np.cross(z, x)
    axes = np.stack([v / max(np.linalg.norm(v), 1e-9) for v in (x, y, z)])
    if axes[2, 2] > 0:  # out of the face points toward the camera, i.e. negative image z
        axes[2] = -axes[2]
    return lm[1, :2], axes


def _colour(track_id: int) -> tuple[int, int, int]:
    return _TRACK_COLOURS[track_id % len(_TRACK_COLOURS)]


def draw_faces(image: NDArray[np.uint8], faces: list[PreviewFace], frame_index: int | None = None,
               cut: bool = False) -> NDArray[np.uint8]:
    """Draw every face of one frame on a copy of ``image`` ((H, W, 3) uint8 RGB)."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 900)
    thick = max(1, int(round(2 * scale)))
    for face in faces:
        obs = face.observation
        bridged = obs.source == Source.BRIDGED
        colour = _BRIDGED if bridged else _colour(face.track_id)
        pts = np.round(obs.landmarks[:, :2]).astype(np.int32)
        for x, y in pts[::2]:
            cv2.circle(out, (int(x), int(y)), 1, colour, -1, cv2.LINE_AA)
        x0, y0, x1, y1 = (int(round(v)) for v in obs.box)
        if obs.confidence < LOW_CONFIDENCE and not bridged:
            for t in range(x0, x1, 12):
                cv2.line(out, (t, y0), (min(t + 6, x1), y0), colour, thick)
                cv2.line(out, (t, y1), (min(t + 6, x1), y1), colour, thick)
            for t in range(y0, y1, 12):
                cv2.line(out, (x0, t), (x0, min(t + 6, y1)), colour, thick)
                cv2.line(out, (x1, t), (x1, min(t + 6, y1)), colour, thick)
        else:
            cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick, cv2.LINE_AA)
        origin, axes = head_axes(obs.landmarks)
        length = 0.8 * max(obs.inter_ocular, 4.0)
        o = tuple(int(round(v)) for v in origin)
        for axis, c in zip(axes, _AXES, strict=True):
            tip = (int(round(origin[0] + length * axis[0])), int(round(origin[1] + length * axis[1])))
            cv2.arrowedLine(out, o, tip, c, thick, cv2.LINE_AA, tipLength=0.2)
        label = f"id {face.track_id}"
        if bridged:
            label += " bridged"
        elif obs.confidence < LOW_CONFIDENCE:
            label += " ?"
        label += f"  y{obs.yaw:+.0f} p{obs.pitch:+.0f} r{obs.roll:+.0f}"
        cv2.putText(out, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, colour,
                    thick, cv2.LINE_AA)
    if frame_index is not None:
        text = f"{frame_index}" + ("  CUT" if cut else "")
        cv2.putText(out, text, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale,
                    (255, 255, 255), thick + 1, cv2.LINE_AA)
    return out


def faces_at(tracks: tuple[Track, ...], frame_index: int) -> list[PreviewFace]:
    """The smoothed faces of every track present in ``frame_index``."""
    out = []
    for track in tracks:
        row = track.row(frame_index)
        if row is not None:
            out.append(PreviewFace(track.track_id, track.observation(row)))
    return out


class PreviewStage:
    """Render stage drawing the analysis over each frame (latency 0)."""

    latency = 0

    def __init__(self, analysis: ClipAnalysis) -> None:
        self.analysis = analysis
        self._cuts = set(int(c) for c in analysis.cut_frames)

    def push(self, frame: Frame) -> list[Frame]:
        faces = faces_at(self.analysis.tracks, frame.index)
        image = draw_faces(frame.image, faces, frame.index, cut=frame.index in self._cuts)
        return [Frame(frame.index, frame.pts, frame.time_base, image)]

    def flush(self) -> list[Frame]:
        return []

    def reset(self) -> None:
        pass
