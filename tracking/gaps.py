"""Splitting a track into segments, and bridging short gaps inside a segment.

A segment is a run of a track with no shot cut and no gap longer than ``max_gap_s`` inside. A
gap is measured in seconds from the first missing frame to the next measured one (for a constant
frame rate: missing frames x frame duration), from the frames' own times, so variable frame rates
are handled. Frames in a short gap get an interpolated observation marked
:attr:`Source.BRIDGED` with confidence 0: landmarks, blendshapes and translation linearly in time,
rotation by spherical linear interpolation, scale geometrically; angles are decomposed from the
interpolated rotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation, Slerp

from tracking.errors import ConfigError, InputError
from tracking.observation import FaceObservation, Source
from tracking.smoothing import angles_from_transforms
from tracking.tracks import TrackedFace

#: Slack on time comparisons (seconds), for timestamps rounded to a time base.
_TIME_SLACK = 1e-6


@dataclass(frozen=True)
class GapConfig:
    """Gap bridging.

    Attributes:
        max_gap_s: longest gap (seconds, first missing frame to the next measured one) that is
            filled by interpolation; a longer one ends the segment.
    """

    max_gap_s: float = 0.3

    def __post_init__(self) -> None:
        if not self.max_gap_s >= 0:
            raise ConfigError(f"gaps: max_gap_s must be >= 0, got {self.max_gap_s}")


def interpolate_observation(
    a: FaceObservation, b: FaceObservation, time_a: float, time_b: float, time: float, frame_index: int
) -> FaceObservation:
    """The observation between ``a`` (at ``time_a``) and ``b`` (at ``time_b``) at ``time``.

    Returns:
        A :attr:`Source.BRIDGED` observation with confidence 0 for ``frame_index``; its box is the
        interpolated landmarks' bounding box.
    """
    if not time_a < time_b or not time_a <= time <= time_b:
        raise InputError(f"frame {frame_index}: cannot interpolate at {time} s between {time_a} and {time_b} s")
    u = (time - time_a) / (time_b - time_a)
    lin = lambda x, y: ((1.0 - u) * x.astype(np.float64) + u * y.astype(np.float64))  # noqa: E731
    landmarks = lin(a.landmarks, b.landmarks).astype(np.float32)
    ma = a.transform.astype(np.float64)
    mb = b.transform.astype(np.float64)
    sa = np.cbrt(abs(np.linalg.det(ma[:3, :3])))
    sb = np.cbrt(abs(np.linalg.det(mb[:3, :3])))
    rots = Rotation.from_matrix(np.stack([ma[:3, :3] / sa, mb[:3, :3] / sb]))
    transform = np.eye(4)
    transform[:3, :3] = Slerp([0.0, 1.0], rots)([u]).as_matrix()[0] * (sa ** (1.0 - u) * sb**u)
    transform[:3, 3] = lin(ma[:3, 3], mb[:3, 3])
    yaw, pitch, roll = angles_from_transforms(transform[None])[0]
    return FaceObservation(
        frame_index=frame_index,
        landmarks=landmarks,
        blendshapes=np.clip(lin(a.blendshapes, b.blendshapes), 0.0, 1.0).astype(np.float32),
        transform=transform.astype(np.float32),
        yaw=float(yaw),
        pitch=float(pitch),
        roll=float(roll),
        confidence=0.0,
        box=np.concatenate([landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)]),
        source=Source.BRIDGED,
    )


def split_and_bridge(
    faces: Sequence[TrackedFace],
    frame_times: NDArray[np.float64],
    cut_frames: Sequence[int] = (),
    config: GapConfig | None = None,
) -> list[list[TrackedFace]]:
    """Cut one track into segments and fill the short gaps inside each.

    Args:
        faces: one track's faces in increasing frame order.
        frame_times: ``(F,)`` seconds of every frame of the clip, indexed by frame index.
        cut_frames: frames that start a new shot; a segment never spans one.
        config: ``max_gap_s``.

    Returns:
        The segments in order; each is contiguous in frames (bridged faces inserted, with the
        track's id) and starts and ends with a measured face.
    """
    cfg = config or GapConfig()
    times = np.asarray(frame_times, dtype=np.float64)
    cuts = np.sort(np.asarray(list(cut_frames), dtype=np.int64))
    segments: list[list[TrackedFace]] = []
    prev: TrackedFace | None = None
    for face in faces:
        idx = face.observation.frame_index
        if not 0 <= idx < times.shape[0]:
            raise InputError(f"frame {idx}: outside the clip's {times.shape[0]} frame times")
        if prev is None:
            segments.append([face])
            prev = face
            continue
        last = prev.observation.frame_index
        if idx <= last:
            raise InputError(f"frame {idx}: track {face.track_id} faces are not in increasing frame order")
        cut_between = bool(np.any((cuts > last) & (cuts <= idx)))
        gap_s = times[idx] - times[last + 1] if idx > last + 1 else 0.0
        if cut_between or gap_s > cfg.max_gap_s + _TIME_SLACK:
            segments.append([face])
        else:
            for missing in range(last + 1, idx):
                obs = interpolate_observation(
                    prev.observation, face.observation, prev.time, face.time, float(times[missing]), missing
                )
                segments[-1].append(TrackedFace(face.track_id, float(times[missing]), obs))
            segments[-1].append(face)
        prev = face
    return segments
