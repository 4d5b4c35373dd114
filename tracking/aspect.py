"""Non-square pixels (anamorphic video): the landmarker looks at the picture as it is displayed.

A stream whose sample aspect ratio (SAR, the width of a pixel over its height) is not 1 stores
its picture squeezed across: HDV's 1440x1080 at 4:3 is shown 1920 wide, widescreen NTSC DV's
720x480 at 40:33 is shown 873 wide. MediaPipe reads a squeezed face as another face: on real
fixture frames squeezed to 3/4 of their width, its mesh (scaled back) moved by 0.023
inter-ocular distances, six times what a one-pixel shift does, pitch read 2.3 degrees higher
and a blendshape score moved by up to 0.56.

So the analysis resamples each frame to square pixels for the landmarker and maps what it finds
back to the stored frame's pixels, where everything else (crops, warps, texture, previews) works:
x, and z (which MediaPipe scales like x, by the frame's width), are scaled back; the head pose
and the blendshapes stay as read on the picture as displayed.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.frame import Frame
from tracking.observation import FaceObservation

if TYPE_CHECKING:
    from tracking.landmarker import Landmarker


def square_width(width: int, aspect: Fraction | float) -> int:
    """Width in square pixels of a picture ``width`` stored pixels wide at sample aspect ``aspect``."""
    return max(1, int(round(width * float(aspect))))


class SquarePixels:
    """Stored frames of one stream to square-pixel ones, and observations back.

    Args:
        width: stored frame width (pixels, display orientation).
        aspect: the stream's sample aspect ratio in display orientation (> 0; 1 changes nothing).
    """

    def __init__(self, width: int, aspect: Fraction | float) -> None:
        if not float(aspect) > 0:
            raise ValueError(f"sample aspect ratio must be > 0, got {aspect}")
        self.width = int(width)
        self.square = square_width(width, aspect)
        #: Square-pixel x per stored x (pixel edges: ``x_sq + 0.5 = kx (x + 0.5)``).
        self.kx = self.square / self.width
        self.identity = self.square == self.width

    def image(self, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``image`` resampled to square pixels (itself when they already are)."""
        if self.identity:
            return image
        if image.shape[1] != self.width:
            raise ValueError(f"image is {image.shape[1]} pixels wide, the stream {self.width}")
        narrower = self.square < self.width
        return cv2.resize(image, (self.square, image.shape[0]),
                          interpolation=cv2.INTER_AREA if narrower else cv2.INTER_LINEAR)

    def frame(self, frame: Frame) -> Frame:
        """``frame`` with its image resampled to square pixels."""
        if self.identity:
            return frame
        return Frame(frame.index, frame.pts, frame.time_base, self.image(frame.image))

    def observation(self, obs: FaceObservation) -> FaceObservation:
        """An observation made on the square-pixel picture, in the stored frame's pixels."""
        if self.identity:
            return obs
        lm = obs.landmarks.astype(np.float32, copy=True)
        lm[:, 0] = (lm[:, 0] + 0.5) / self.kx - 0.5
        lm[:, 2] /= self.kx
        box = obs.box.astype(np.float32, copy=True)
        box[[0, 2]] = (box[[0, 2]] + 0.5) / self.kx - 0.5
        return dataclasses.replace(obs, landmarks=lm, box=box)

    def detect_image(self, landmarker: Landmarker, image: NDArray[np.uint8], **kwargs: Any) -> list[FaceObservation]:
        """``landmarker.detect_image`` (``kwargs`` passed on) of ``image`` read in square pixels,
        the faces in ``image``'s own pixels."""
        return [self.observation(f) for f in landmarker.detect_image(self.image(image), **kwargs)]
