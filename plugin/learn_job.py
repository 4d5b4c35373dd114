"""``deltaface learn-delta``: learn a delta from (before, after) example images.

Reads each image (any format OpenCV reads, or the first frame of a video), finds its face with the
landmarker in still-image mode, and hands the landmark pairs to ``synthesis.learn``. Only the
change between the two images of a pair is kept, so the example's identity cancels; the examples
may be photos of anyone or CGI renders.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from plugin.output import AtomicOutput
from synthesis.deltas import Delta, save_delta
from synthesis.learn import LearnReport, learn_delta
from tracking.errors import ConfigError, InputError
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.observation import FaceObservation


def read_image(path: Path) -> NDArray[np.uint8]:
    """``(H, W, 3)`` uint8 RGB of a still (or of a video's first frame, as displayed: a stream of
    non-square pixels is resampled to square ones, so that the face keeps its proportions; a
    learned delta is geometry, not pixels of that file).

    Raises:
        InputError: missing or unreadable.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        from plugin.video import VideoReader
        from tracking.aspect import SquarePixels

        try:
            with VideoReader(path) as reader:
                square = SquarePixels(reader.info.width, reader.info.sample_aspect_ratio)
                return square.image(reader.frame_at(0).image)
        except InputError:
            raise InputError(f"{path}: not an image or video deltaface can read") from None
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _one_face(landmarker: Landmarker, path: Path) -> FaceObservation:
    """The largest face in the example (the tiled search only where the whole-image pass finds none)."""
    faces = landmarker.detect_image(read_image(path), search_only_if_none=True)
    if not faces:
        raise InputError(f"{path}: no face found (the example must show one face)")
    if len(faces) > 1:
        faces = sorted(faces, key=lambda f: -float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
    return faces[0]


def learn_from_images(
    pairs: list[tuple[Path, Path]],
    name: str,
    output: Path,
    *,
    description: str = "",
    max_strength: float = 1.0,
    overwrite: bool = False,
    bundle_path: str | None = None,
) -> tuple[Delta, LearnReport]:
    """Learn a delta from image pairs and save it to ``output``.

    Raises:
        ConfigError: no pairs, or before/after counts differ.
        InputError: an image is unreadable or shows no face.
        OutputError: ``output`` exists (without overwrite) or cannot be written.
    """
    if not pairs:
        raise ConfigError("learn-delta needs at least one --before/--after pair")
    if output.suffix != ".delta":
        raise ConfigError(f"{output}: a delta file must end in .delta")
    with AtomicOutput(output, overwrite=overwrite, inputs=[p for pair in pairs for p in pair]) as tmp:
        with Landmarker(LandmarkerConfig(running_mode="image", num_faces=2, bundle_path=bundle_path)) as lm:
            observed = [(_one_face(lm, b), _one_face(lm, a)) for b, a in pairs]
        source = "; ".join(f"{b.name} -> {a.name}" for b, a in pairs)
        delta, report = learn_delta(
            [(b.landmarks, a.landmarks) for b, a in observed], name,
            blendshape_pairs=[(b.blendshapes, a.blendshapes) for b, a in observed],
            description=description or f"learned from {len(pairs)} example pair(s): {source}",
            max_strength=max_strength, source=source,
        )
        save_delta(tmp, delta)
    return delta, report


def report_dict(delta: Delta, report: LearnReport) -> dict[str, Any]:
    """The learning report as JSON-compatible figures."""
    out = asdict(report)
    out["name"] = delta.name
    out["kind"] = delta.kind
    out["pose_change_deg"] = [round(float(v), 2) for v in delta.pose]
    return out
