"""The embedded default input: the public-domain astronaut portrait, moved like a head.

``make demo`` and the benchmarks need a real face in a real video without shipping footage whose
licence forbids it. The astronaut portrait (NASA, public domain; shipped as
``plugin/data/astronaut.png``) is animated with a known, smooth synthetic motion: in-plane rotation,
scale, translation and perspective warps that imitate small head turns. Because every frame is the
still warped by a known homography, the motion is ground truth for tracking benchmarks:
a point ``p`` in the still lands at ``frame_trans_still[i] @ p`` in frame ``i``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from plugin.output import AtomicOutput

#: Frames per second of the demo clip.
DEMO_FPS = 25


def astronaut_image() -> NDArray[np.uint8]:
    """The shipped astronaut portrait as ``(512, 512, 3)`` uint8 RGB."""
    data = resources.files("plugin").joinpath("data/astronaut.png").read_bytes()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


@dataclass(frozen=True)
class MotionSettings:
    """Amplitudes of the synthetic head motion (each a smooth sinusoid over the clip).

    Attributes:
        num_frames: clip length.
        yaw_deg, pitch_deg: amplitude of the perspective "turn" (a plane rotated about the face
            centre, seen by a camera with focal length ``focal`` x image width).
        roll_deg: amplitude of in-plane rotation.
        scale: relative amplitude of zoom (0.06 = 0.94x to 1.06x).
        shift_px: amplitude of translation in pixels.
        focal: focal length of the virtual camera, in image widths.
    """

    num_frames: int = 75
    yaw_deg: float = 12.0
    pitch_deg: float = 6.0
    roll_deg: float = 8.0
    scale: float = 0.06
    shift_px: float = 16.0
    focal: float = 1.5

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError("num_frames must be >= 1")
        if not 0 <= self.yaw_deg < 45 or not 0 <= self.pitch_deg < 45:
            raise ValueError("yaw and pitch amplitudes must be in [0, 45) degrees")


def motion_homographies(
    size: tuple[int, int], centre: tuple[float, float], settings: MotionSettings
) -> NDArray[np.float64]:
    """Per-frame homographies ``frame_trans_still`` of the synthetic motion.

    Args:
        size: ``(width, height)`` of the still in pixels.
        centre: ``(x, y)`` pixel the motion pivots about (the face centre).
        settings: motion amplitudes.

    Returns:
        ``(N, 3, 3)`` float64; maps homogeneous still pixels (x right, y down) to frame pixels.
        Frame 0 is the identity.
    """
    w, _ = size
    cx, cy = centre
    f = settings.focal * w
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    k_inv = np.linalg.inv(k)
    e3 = np.array([0.0, 0.0, 1.0])
    n = settings.num_frames
    out = np.empty((n, 3, 3))
    for i in range(n):
        phase = 2 * math.pi * i / max(n - 1, 1)
        yaw = math.radians(settings.yaw_deg) * math.sin(phase)
        pitch = math.radians(settings.pitch_deg) * math.sin(2 * phase)
        roll = math.radians(settings.roll_deg) * math.sin(phase + 0.7) * math.sin(phase / 2)
        s = 1.0 + settings.scale * math.sin(1.5 * phase)
        tx = settings.shift_px * math.sin(phase + 1.3) * math.sin(phase / 2)
        ty = 0.5 * settings.shift_px * math.sin(2 * phase + 0.4) * math.sin(phase / 2)
        cyw, syw = math.cos(yaw), math.sin(yaw)
        cp, sp = math.cos(pitch), math.sin(pitch)
        ry = np.array([[cyw, 0, syw], [0, 1, 0], [-syw, 0, cyw]])
        rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        # A plane facing the camera, rotated in depth about its own centre (the face centre):
        # X' = R (X - X0) + X0 with X0 on the optical axis, which keeps the centre in place.
        rot = ry @ rx
        turn = k @ (rot + (np.eye(3) - rot) @ np.outer(e3, e3)) @ k_inv
        cr, sr = math.cos(roll), math.sin(roll)
        similar = np.array(
            [
                [s * cr, -s * sr, cx + tx - s * (cr * cx - sr * cy)],
                [s * sr, s * cr, cy + ty - s * (sr * cx + cr * cy)],
                [0, 0, 1.0],
            ]
        )
        h = similar @ turn
        out[i] = h / h[2, 2]
    return out


def render_motion_frames(
    still: NDArray[np.uint8], homographies: NDArray[np.float64]
) -> list[NDArray[np.uint8]]:
    """Warp ``still`` by each homography (bilinear, mirrored border) into frames of its size."""
    h, w = still.shape[:2]
    return [
        cv2.warpPerspective(still, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        for hom in homographies
    ]


#: The astronaut's face centre in the shipped still, in pixels (between eyes and mouth).
ASTRONAUT_FACE_CENTRE = (228.0, 130.0)


def write_demo_clip(path: Path, settings: MotionSettings = MotionSettings(), *, overwrite: bool = True) -> Path:
    """Write the demo clip (H.264, near-lossless) and its ground truth beside it.

    Writes ``path`` and ``path.with_suffix(".motion.json")`` holding ``fps`` and the per-frame
    ``frame_trans_still`` homographies.

    Returns:
        The path of the clip.
    """
    still = astronaut_image()
    homs = motion_homographies((still.shape[1], still.shape[0]), ASTRONAUT_FACE_CENTRE, settings)
    frames = render_motion_frames(still, homs)
    with AtomicOutput(path, overwrite=overwrite) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=DEMO_FPS)
            stream.width, stream.height = still.shape[1], still.shape[0]
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, DEMO_FPS)
            stream.options = {"crf": "10", "preset": "medium"}
            stream.codec_context.color_range = 1  # limited (MPEG) range, as cameras deliver
            for i, img in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = i
                vf.time_base = Fraction(1, DEMO_FPS)
                for packet in stream.encode(vf):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    truth = {
        "fps": DEMO_FPS,
        "source": "plugin/data/astronaut.png (NASA, public domain)",
        "convention": "frame_trans_still: 3x3 homography, still pixels -> frame pixels, x right, y down",
        "settings": settings.__dict__,
        "frame_trans_still": homs.round(9).tolist(),
    }
    with AtomicOutput(path.with_suffix(".motion.json"), overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    return path
