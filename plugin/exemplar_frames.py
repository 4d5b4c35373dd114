"""The clip frames that lend texture, decoded in one forward pass and kept as face crops.

The texture compositor (``plugin.texture_stage.TextureCompositor``) borrows regions from other
frames of the same clip. Which frame lends to which is chosen before the render pass, so the
frames are known in advance, but the order the render asks for them is not the clip's: frame 0 may
borrow from frame 56, frame 30 from frame 40, frame 70 from frame 110 and frame 110 from frame 103.
Decoded one at a time with ``VideoReader.frame_at``, every step back is a seek and a decode from
the keyframe before it: on a clip with one keyframe that is every frame since the start. On
``bench/perf.py``'s 1080p clip (a smile on every frame, 9 lending frames) that cost 8.7 ms of CPU
per rendered frame, more than the warp's sampling.

:class:`ExemplarFrames` reads forward only: asked for a frame beyond the ones it has read, it
decodes on to it and keeps, on the way, every lending frame the render will still ask for. It
keeps each as a crop around the face that borrows from it (a lending frame is only ever read
there), and drops a crop once the render has passed its last use. Frames passed on the way are
kept only within ``budget_bytes`` of crops (one beyond the budget is read again when asked for:
slower, same pixels); the frame asked for is always kept.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from plugin.video import VideoReader

#: Frames the render may still be working on behind the latest frame that asked (the edit stage
#: edits two frames at once, with a few more queued): a crop is dropped only this far past its
#: last use.
IN_FLIGHT_FRAMES = 16
#: Margin around a lending face's landmarks kept in its crop, as a fraction of the face's size
#: (the regions lie well inside the landmarks' box; samplers read a few pixels around them).
CROP_MARGIN = 0.1
#: ... plus this many pixels.
CROP_MARGIN_PX = 4


def face_box(landmarks: NDArray[np.floating], frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (exclusive ends) around ``landmarks`` ``(N, 2|3)`` pixels, grown by
    :data:`CROP_MARGIN` and :data:`CROP_MARGIN_PX`, clipped to the frame ``(height, width)``."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = CROP_MARGIN * float((hi - lo).max()) + CROP_MARGIN_PX
    h, w = frame_size
    x0, y0 = (max(int(math.floor(v - pad)), 0) for v in lo)
    x1, y1 = min(int(math.ceil(hi[0] + pad)) + 1, w), min(int(math.ceil(hi[1] + pad)) + 1, h)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


class ExemplarFrames:
    """Crops of the lending frames of one clip, read forward (see the module docstring).

    Args:
        input_path: the clip.
        uses: ``{(track id, lending frame): last frame index that borrows from it}``.
        landmarks: ``{(track id, lending frame): (478, 2|3) landmarks of that face there}``
            (the crop is taken around them).
        budget_bytes: most bytes of crops kept at once.

    Not thread-safe: the compositor calls it under its lock.
    """

    def __init__(self, input_path: Path, uses: Mapping[tuple[int, int], int],
                 landmarks: Mapping[tuple[int, int], NDArray[np.floating]], budget_bytes: int) -> None:
        self.input_path = Path(input_path)
        self.uses = dict(uses)
        self.landmarks = dict(landmarks)
        self.budget_bytes = int(budget_bytes)
        self._by_frame: dict[int, list[int]] = {}
        for tid, frame in sorted(self.uses):
            self._by_frame.setdefault(frame, []).append(tid)
        self._frames = sorted(self._by_frame)
        self._reader: VideoReader | None = None
        self._read_to = -1  # the forward pass has read every lending frame up to here
        self._crops: dict[tuple[int, int], tuple[NDArray[np.uint8], NDArray[np.float32]]] = {}
        self._bytes = 0
        #: Frames decoded to RGB, and of those the ones read behind the forward pass (a seek each).
        self.decoded = 0
        self.reread = 0

    def get(self, track_id: int, frame: int, now: int) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """The crop of ``track_id``'s face in lending frame ``frame`` and the face's landmarks in
        it, for the render's frame ``now``.

        Raises:
            KeyError: ``(track_id, frame)`` is not a lending frame of that face.
            TruncatedInputError: the frame cannot be decoded.
        """
        key = (track_id, frame)
        if key not in self.uses:
            raise KeyError(key)
        self._drop_passed(now)
        have = self._crops.get(key)
        if have is not None:
            return have
        if frame <= self._read_to:  # dropped for the budget: read again, behind the forward pass
            self.reread += 1
            return self._crop(key, self._decode(frame), always=True)
        wanted = None
        start = bisect.bisect_right(self._frames, self._read_to)
        stop = bisect.bisect_right(self._frames, frame)
        for f in self._frames[start:stop]:
            image = self._decode(f)
            for tid in self._by_frame[f]:
                if (tid, f) == key:
                    wanted = self._crop(key, image, always=True)
                elif self.uses[(tid, f)] >= now:
                    self._crop((tid, f), image)
        self._read_to = frame
        assert wanted is not None
        return wanted

    def _decode(self, frame: int) -> NDArray[np.uint8]:
        if self._reader is None:
            self._reader = VideoReader(self.input_path)
        self.decoded += 1
        return self._reader.frame_at(frame).image

    def _crop(self, key: tuple[int, int], image: NDArray[np.uint8],
              always: bool = False) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """The crop of ``key``'s face in ``image`` and its landmarks there, kept until its last use
        if asked for (``always``: the frames after usually borrow it too), or else if the budget
        allows."""
        x0, y0, x1, y1 = face_box(self.landmarks[key], image.shape[:2])
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        lm = np.array(self.landmarks[key], np.float32)
        lm[:, 0] -= x0
        lm[:, 1] -= y0
        if always or self._bytes + crop.nbytes <= self.budget_bytes:
            self._crops[key] = (crop, lm)
            self._bytes += crop.nbytes
        return crop, lm

    def _drop_passed(self, now: int) -> None:
        for key in [k for k in self._crops if self.uses[k] < now - IN_FLIGHT_FRAMES]:
            self._bytes -= self._crops.pop(key)[0].nbytes

    @property
    def kept_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._crops.clear()
        self._bytes = 0
