"""Interlaced frames are edited field by field: a field's rows come from that field alone.

Two woven versions of real fixture frames share their even rows (the top field); the odd rows
(the bottom field) of one are tinted, as a field shot at another moment differs. Edited with the
same plan, field by field, the two outputs' even rows must be identical: nothing of the bottom
field reaches the top one. Warping woven frames mixes them (checked too, so the test can fail).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest

from compositing.fields import crop_box, field_image
from plugin.edit_job import prepare_edit
from plugin.probe import probe
from plugin.video import VideoReader
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve
from tracking.frame import Frame

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
CLIP = FIXTURES / "retalking_face_1.mp4"
FRAMES = 5
TINT = np.array([30, -30, 0])


@pytest.fixture(scope="module")
def woven(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Frame], list[Frame]]:
    """An interlaced-flagged lossless clip of fixture frames, its frames, and the same frames with
    the bottom field tinted."""
    if not CLIP.is_file():
        pytest.skip(f"fixture {CLIP} is absent")
    with VideoReader(CLIP) as reader:
        frames = list(reader.frames(0, FRAMES))
    path = tmp_path_factory.mktemp("fields") / "woven.mkv"
    h, w = frames[0].image.shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        stream.codec_context.field_order = 2  # interlaced, top field first
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f.image, format="rgb24").reformat(format="bgr0")))
        out.mux(stream.encode())
    with VideoReader(path) as reader:
        plain = list(reader)
    tinted = []
    for f in plain:
        image = f.image.copy()
        image[1::2] = np.clip(image[1::2].astype(np.int16) + TINT, 0, 255).astype(np.uint8)
        tinted.append(dataclasses.replace(f, image=image))
    return path, plain, tinted


def test_each_field_is_edited_from_its_own_rows(woven: tuple[Path, list[Frame], list[Frame]], tmp_path: Path) -> None:
    path, plain, tinted = woven
    assert probe(path).fields_are_rows
    schedule = EditSchedule((EditEntry(0, "smile", StrengthCurve.constant(0.7)),
                             EditEntry(0, "head_yaw", StrengthCurve.constant(8.0))))
    prepared = prepare_edit(path, schedule, cache_dir=tmp_path)
    stage = prepared.stage
    assert stage.fields  # the clip says it is interlaced
    for a, b in zip(plain, tinted, strict=True):
        out_a, out_b = stage.push(a)[0].image, stage.push(b)[0].image
        assert (out_a[0::2] != a.image[0::2]).any(axis=2).sum() > 500  # the edit moved the top field
        assert np.array_equal(out_a[0::2], out_b[0::2])  # ... from its own rows only
        # The bottom field is edited too, the tint carried along.
        moved = (out_b[1::2] != b.image[1::2]).any(axis=2)
        assert moved.sum() > 500
        diff = out_b[1::2][moved].astype(int) - out_a[1::2][moved]
        assert np.abs(np.median(diff, axis=0) - TINT).max() <= 1
    # Warped whole, the frame's fields mix: the top field's edited rows differ.
    stage.fields = False
    out_a, out_b = stage.push(plain[2])[0].image, stage.push(tinted[2])[0].image
    assert (out_a[0::2] != out_b[0::2]).any(axis=2).sum() > 100
    prepared.close()


def test_field_image_rebuilds_the_other_rows_inside_the_box() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    box = (1, 0, 6, 9)
    for parity in (0, 1):
        out = field_image(image, parity, box)
        assert np.array_equal(out[parity::2], image[parity::2])  # this field's rows as they were
        assert np.array_equal(out[:, :1], image[:, :1]) and np.array_equal(out[:, 6:], image[:, 6:])
        for r in range(1 - parity, 9, 2):
            above, below = r - 1 if r > 0 else r + 1, r + 1 if r < 8 else r - 1
            want = (image[above, 1:6].astype(int) + image[below, 1:6] + 1) // 2
            assert np.array_equal(out[r, 1:6], want), (parity, r)
    with pytest.raises(ValueError, match="parity"):
        field_image(image, 2, box)


def test_crop_box_holds_the_crop() -> None:
    from compositing.crop import FaceCrop

    t = np.array([[2.0, 0.0, 100.0], [0.0, 2.0, 50.0], [0.0, 0.0, 1.0]])  # crop pixel -> frame pixel
    crop = FaceCrop(np.linalg.inv(t), t, 64, (400, 300))
    x0, y0, x1, y1 = crop_box(crop)
    # The crop covers frame x 99..227 and y 49..177 (pixel edges); 3 pixels more for the kernel.
    assert (x0, y0, x1, y1) == (96, 46, 231, 181)  # exclusive ends
    assert crop_box(FaceCrop(np.linalg.inv(t), t, 200, (400, 300))) == (96, 46, 300, 400)  # clipped to the frame
