"""Something passes in front of the face: the frames the tracker bridged are not edited.

A real face (the LivePortrait fixture) with a checkerboard card sliding across it: while the card
covers the face the landmarker finds none, and the tracker bridges the gap by interpolation. An
edit there would warp the card, and paste a borrowed mouth onto it, as if it were the face.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from plugin.analyze import run_analysis
from plugin.edit_job import EditJob, run_edit
from plugin.pipeline import RenderJob
from plugin.video import VideoReader
from plugin.writer import OutputConfig
from synthesis.plan import UNSEEN_LABEL, PlanConfig
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve
from tests.plugin.media import write_clip
from tracking.observation import Source
from tracking.analysis import SOURCE_CODES

CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "liveportrait_d0.mp4"
FRAMES = 40
#: The card: frames it is on, its rows, width, and where its left edge starts and how fast it moves.
CARD_FRAMES = range(8, 29)
CARD_ROWS = slice(140, 440)
CARD_WIDTH, CARD_X0, CARD_SPEED = 220, -200, 36


def _occluded_clip(path: Path) -> Path:
    with VideoReader(CLIP) as reader:
        images = [f.image.copy() for f in reader.frames(0, FRAMES)]
    yy, xx = np.mgrid[0:images[0].shape[0], 0:images[0].shape[1]]
    board = np.repeat((((yy // 16 + xx // 16) % 2) * 160 + 40).astype(np.uint8)[..., None], 3, axis=2)
    for i in CARD_FRAMES:
        x0 = CARD_X0 + (i - CARD_FRAMES[0]) * CARD_SPEED
        a, b = max(x0, 0), min(x0 + CARD_WIDTH, images[i].shape[1])
        if b > a:
            images[i][CARD_ROWS, a:b] = board[CARD_ROWS, a:b]
    return write_clip(path, codec="ffv1", pix_fmt="bgr0", images=images)


@pytest.mark.parametrize("edit_unseen", [False, True])
def test_frames_where_the_face_is_hidden_pass_through(tmp_path: Path, edit_unseen: bool) -> None:
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    src = _occluded_clip(tmp_path / "card.mkv")
    cache = tmp_path / "cache"
    (track,) = run_analysis(src, cache_dir=cache).analysis.tracks
    bridged = track.frame_indices[track.sources == SOURCE_CODES[Source.BRIDGED]].tolist()
    assert len(bridged) >= 2 and set(bridged) <= set(CARD_FRAMES)
    schedule = EditSchedule((EditEntry(track.track_id, "head_yaw", StrengthCurve.constant(8.0)),
                             EditEntry(track.track_id, "smile", StrengthCurve.constant(0.6))))
    out = tmp_path / "out.mkv"
    summary = run_edit(EditJob(RenderJob(src, out, OutputConfig(codec="ffv1")), schedule, cache_dir=cache,
                               plan=PlanConfig(edit_unseen=edit_unseen)))
    with VideoReader(src) as a, VideoReader(out) as b:
        changed = [not np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True)]
    events = [e for e in summary.plans[0].events if e.delta.endswith(f"({UNSEEN_LABEL})")]
    far = [f for f in range(FRAMES) if min(abs(f - g) for g in bridged) > 4]
    assert all(changed[f] for f in far)
    if edit_unseen:
        assert all(changed[f] for f in bridged) and events == []
        return
    assert not any(changed[f] for f in bridged)
    assert {(e.first_frame, e.last_frame) for e in events} == {(bridged[0], bridged[-1])}


def _overlap_clip(path: Path, frames: int = 10) -> tuple[Path, list[np.ndarray]]:
    """The astronaut's portrait with the LivePortrait man (keyed off his green screen) in front of
    it, his head over her right cheek: two faces, one partly hiding the other. Also gives the
    man's pixels in each frame (his key, eroded by 2 pixels)."""
    from plugin.demo import astronaut_image

    portrait = astronaut_image()
    with VideoReader(CLIP) as reader:
        fronts = [f.image.astype(np.float32) for f in reader.frames(0, frames)]
    images, masks = [], []
    for man in fronts:
        canvas = np.full((576, 1024, 3), 90, np.float32)
        canvas[32:544, 100:612] = portrait
        key = (man[..., 1] > man[..., 0] + 25) & (man[..., 1] > man[..., 2] + 25)
        alpha = cv2.GaussianBlur((~key).astype(np.float32), (5, 5), 0)[90:, :, None]
        region = canvas[0:422, 205:717]
        region[:] = alpha * man[90:] + (1 - alpha) * region
        images.append(np.rint(canvas).astype(np.uint8))
        mask = np.zeros((576, 1024), np.uint8)
        mask[0:422, 205:717] = ~key[90:]
        masks.append(cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0)
    return write_clip(path, codec="ffv1", pix_fmt="bgr0", images=images), masks


@pytest.mark.parametrize("protect", [True, False])
def test_an_edit_of_a_face_behind_another_leaves_the_nearer_head_alone(tmp_path: Path, monkeypatch,
                                                                       protect: bool) -> None:
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    import plugin.edit_job
    from synthesis.regions import inter_ocular

    src, front_pixels = _overlap_clip(tmp_path / "two.mkv")
    cache = tmp_path / "cache"
    tracks = run_analysis(src, cache_dir=cache).analysis.tracks
    assert len(tracks) == 2 and all(len(t.frame_indices) == len(front_pixels) for t in tracks)
    back = min(tracks, key=lambda t: inter_ocular(t.landmarks[0]))  # the astronaut, farther away
    if not protect:  # the stage as before: it knew only the faces it edited
        monkeypatch.setattr(plugin.edit_job, "tracked_faces", lambda tracks: (lambda frame: []))
    schedule = EditSchedule((EditEntry(back.track_id, "head_yaw", StrengthCurve.constant(10.0)),
                             EditEntry(back.track_id, "smile", StrengthCurve.constant(0.7))))
    out = tmp_path / "out.mkv"
    run_edit(EditJob(RenderJob(src, out, OutputConfig(codec="ffv1")), schedule, cache_dir=cache))
    with VideoReader(src) as a, VideoReader(out) as b:
        diffs = [np.abs(x.image.astype(int) - y.image.astype(int)).max(axis=2) for x, y in zip(a, b, strict=True)]
    assert all((d[~m] > 2).sum() > 1000 for d, m in zip(diffs, front_pixels))  # her face was edited
    touched = sum(int((d[m] > 0).sum()) for d, m in zip(diffs, front_pixels))
    if protect:
        assert touched == 0
    else:
        assert touched > 1000


def _mouth_card_clip(path: Path, frames: int = 36, covered: range = range(14, 30)) -> Path:
    """The LivePortrait man with a checkerboard card held over his mouth (a hand, a microphone):
    the landmarker keeps tracking him and makes up the lips under the card."""
    with VideoReader(CLIP) as reader:
        images = [f.image.copy() for f in reader.frames(0, frames)]
    yy, xx = np.mgrid[0:images[0].shape[0], 0:images[0].shape[1]]
    board = np.repeat((((yy // 16 + xx // 16) % 2) * 160 + 40).astype(np.uint8)[..., None], 3, axis=2)
    for i in covered:
        images[i][300:, 150:370] = board[300:, 150:370]
    return write_clip(path, codec="ffv1", pix_fmt="bgr0", images=images)


def test_no_mouth_is_pasted_onto_a_card_held_over_it(tmp_path: Path) -> None:
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    import dataclasses

    from compositing.texture import TextureBlendConfig
    from plugin.texture_stage import TextureConfig

    src = _mouth_card_clip(tmp_path / "card.mkv")
    cache = tmp_path / "cache"
    (track,) = run_analysis(src, cache_dir=cache).analysis.tracks
    assert len(track.frame_indices) == 36  # tracked under the card too
    schedule = EditSchedule((EditEntry(track.track_id, "jaw_open", StrengthCurve.over_range(0.5, 10, 33, 2)),))
    outputs, summaries = {}, {}
    for name, texture in (("checked", TextureConfig()),
                          ("unchecked", dataclasses.replace(TextureConfig(), blend=TextureBlendConfig(hold_back_covered=False))),
                          ("warp_only", None)):
        out = tmp_path / f"{name}.mkv"
        # the texture's own hold-back alone: occluders not looked for (they would put the card's
        # pixels back after it, whatever was pasted there)
        summaries[name] = run_edit(EditJob(RenderJob(src, out, OutputConfig(codec="ffv1")), schedule,
                                           cache_dir=cache, texture=texture, occluders=None))
        with VideoReader(out) as reader:
            outputs[name] = [f.image for f in reader]
    covered = [e for e in summaries["checked"].texture if e["action"] == "covered"]
    assert covered and all(e["region"] == "mouth" for e in covered)
    held = {f for e in covered for f in range(e["frames"][0], e["frames"][1] + 1)}

    def pasted(name: str, f: int) -> int:
        return int(np.abs(outputs[name][f].astype(int) - outputs["warp_only"][f]).sum())

    # held back (wholly where the two disagree outright): less of the exemplar than unchecked,
    # where a mouth lands on the card (or the card on the mouth)
    assert all(pasted("checked", f) <= pasted("unchecked", f) for f in held)
    assert sum(pasted("checked", f) == 0 < pasted("unchecked", f) for f in held) >= 3
    # where texture went on, the frame and its exemplar are both clear, or both show the card; a
    # mouth opened on a frame (no frame here is open as wide as the edit asks) is made from a
    # clear one, although the frames under the card read a little more open
    card = set(range(14, 30))
    made = set()
    for e in summaries["checked"].texture:
        if e["action"] == "texture":
            for a, b, source in e["runs"]:
                if "made from frame" in source:
                    lent = int(source.split("made from frame ")[1])
                    made.add(lent)
                    assert lent not in card, source
                else:
                    lent = int(source.split(":")[1])
                for f in set(range(a, b + 1)) - held:
                    assert (f in card) == (lent in card), (f, source)
    assert made


def test_a_card_over_the_mouth_keeps_its_pixels_through_the_edit(tmp_path: Path) -> None:
    """The warp bent the card with the face (a jaw drop and a head turn); with occluders looked
    for (the default) the card keeps its bytes, and the face above it is still edited."""
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    src = _mouth_card_clip(tmp_path / "card.mkv")
    cache = tmp_path / "cache"
    schedule = EditSchedule((EditEntry(0, "jaw_open", StrengthCurve.over_range(0.5, 6, 33, 2)),
                             EditEntry(0, "head_yaw", StrengthCurve.over_range(8.0, 6, 33, 2))))
    outputs, summaries = {}, {}
    for name, kw in (("kept", {}), ("bent", {"occluders": None})):
        out = tmp_path / f"{name}.mkv"
        summaries[name] = run_edit(EditJob(RenderJob(src, out, OutputConfig(codec="ffv1")), schedule,
                                           cache_dir=cache, **kw))
        with VideoReader(out) as reader:
            outputs[name] = [f.image for f in reader]
    with VideoReader(src) as reader:
        inputs = [f.image for f in reader]
    assert summaries["kept"].occluders == [{"face": 0, "frames": [14, 29], "action": "occluded",
                                            "share": summaries["kept"].occluders[0]["share"]}]
    assert summaries["bent"].occluders == []

    def changed(name: str, f: int, rows: slice, cols: slice) -> float:
        d = np.abs(outputs[name][f].astype(int) - inputs[f].astype(int)).max(axis=2)[rows, cols]
        return float((d > 2).mean())

    card = (slice(300, None), slice(150, 370))
    upper = (slice(120, 260), slice(150, 370))  # eyes and nose, above the card
    for f in range(14, 30):
        assert changed("bent", f, *card) > 0.2
        assert changed("kept", f, *card) < 0.02
        assert changed("kept", f, *upper) > 0.2
    # frames without the card: the same edit either way
    for f in (8, 13, 30, 33):
        assert np.array_equal(outputs["kept"][f], outputs["bent"][f])


#: The restore tests' card: frames it is on (plate and swap), and its box.
SWAP_CARD_FRAMES, SWAP_CARD = range(14, 30), (slice(300, None), slice(150, 370))


def _card_swap(tmp_path: Path, wiped: range = range(0)) -> tuple[Path, Path, list[np.ndarray]]:
    """The card clip as a plate, and a swap of it whose head is turned 8 degrees (on frames
    6-33), with the card in front as the plate has it (a swap model leaves what covers the face)
    and, on ``wiped``, the face above the card smeared to its mean colour (the swap lost it).
    Gives the plate, the swap and the swap's frames."""
    frames = 36
    plate = _mouth_card_clip(tmp_path / "plate.mkv", frames, SWAP_CARD_FRAMES)
    clean = _mouth_card_clip(tmp_path / "clean.mkv", frames, range(0))
    turned = tmp_path / "turned.mkv"
    run_edit(EditJob(RenderJob(clean, turned, OutputConfig(codec="ffv1")),
                     EditSchedule((EditEntry(0, "head_yaw", StrengthCurve.over_range(8.0, 6, 33, 2)),)),
                     cache_dir=tmp_path / "cache", texture=None, occluders=None))
    swapped = []
    with VideoReader(plate) as p, VideoReader(turned) as t:
        for f, (a, b) in enumerate(zip(p, t, strict=True)):
            image = b.image.copy()
            if f in wiped:
                face = image[60:300, 110:410]
                face[:] = face.reshape(-1, 3).mean(axis=0).astype(np.uint8)
            if f in SWAP_CARD_FRAMES:
                image[SWAP_CARD] = a.image[SWAP_CARD]
            swapped.append(image)
    return plate, write_clip(tmp_path / "swap.mkv", codec="ffv1", pix_fmt="bgr0", images=swapped), swapped


def _restored_both_ways(tmp_path: Path, plate: Path, swap: Path, **job: object) -> tuple[dict, dict]:
    """Restores of ``swap`` against ``plate`` with occluders looked for (``"kept"``) and not
    (``"bent"``): the output frames and the summaries."""
    from plugin.restore import RestoreJob, run_restore
    from synthesis.restore import RestoreConfig

    outputs, summaries = {}, {}
    for name, kw in (("kept", {}), ("bent", {"occluders": None})):
        out = tmp_path / f"{name}.mkv"
        summaries[name] = run_restore(RestoreJob(plate, swap, out, OutputConfig(codec="ffv1"), cache_dir=tmp_path / "cache",
                                                 config=RestoreConfig(refine_rounds=0), verify=False, **job, **kw))
        with VideoReader(out) as reader:
            outputs[name] = [f.image for f in reader]
    return outputs, summaries


def _changed(image: np.ndarray, before: np.ndarray, box: tuple[slice, slice]) -> float:
    """Share of the pixels of ``box`` that differ by more than 2 levels."""
    return float((np.abs(image.astype(int) - before.astype(int)).max(axis=2)[box] > 2).mean())


@pytest.mark.parametrize("lossy", [False, True])
def test_a_card_in_the_plate_keeps_its_pixels_through_a_swap_repair(tmp_path: Path, lossy: bool) -> None:
    """A swap that turned the head 8 degrees from the plate's, with the card over the mouth in
    both: the repair turns the head back, and the card, found in the plate, keeps the swap's
    bytes; not looked for, it bends. Also with the swap delivered as H.264 (crf 28): its card is
    no longer the plate's bytes, only close to them (``plugin.occluder_pass.SAME_LUMA``)."""
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    plate, swap, swapped = _card_swap(tmp_path)
    if lossy:
        swap = write_clip(tmp_path / "swap.mp4", codec="libx264", pix_fmt="yuv420p", images=swapped,
                          codec_options={"crf": "28"})
        with VideoReader(swap) as reader:
            swapped = [f.image for f in reader]
    outputs, summaries = _restored_both_ways(tmp_path, plate, swap)
    (face,) = {r.pair.swap_id for r in summaries["kept"].plan.restores}
    covered = SWAP_CARD_FRAMES
    assert [(e["face"], e["frames"]) for e in summaries["kept"].occluders] == [(face, [covered[0], covered[-1]])]
    assert summaries["bent"].occluders == []
    upper = (slice(120, 260), slice(150, 370))  # eyes and nose, above the card
    for f in covered:
        assert _changed(outputs["bent"][f], swapped[f], SWAP_CARD) > 0.2
        assert _changed(outputs["kept"][f], swapped[f], SWAP_CARD) < 0.02
        assert _changed(outputs["kept"][f], swapped[f], upper) > 0.2


def test_a_face_bridged_where_the_swap_lost_it_leaves_the_card_in_front(tmp_path: Path) -> None:
    """Where the swap lost the face (frames 18-22, above the card), ``--bridge`` pastes the nearest
    good swap frame's face, warped to the plate's pose; the card the plate shows in front keeps
    its pixels instead of the pasted face going over it."""
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    wiped = range(18, 23)
    plate, swap, swapped = _card_swap(tmp_path, wiped)
    outputs, summaries = _restored_both_ways(tmp_path, plate, swap, bridge=True)
    assert all(summaries[k].bridged == [[wiped[0], wiped[-1]]] for k in summaries)
    upper = (slice(120, 260), slice(150, 370))
    for f in wiped:
        assert _changed(outputs["kept"][f], swapped[f], upper) > 0.5  # a face pasted where it was lost
        assert _changed(outputs["bent"][f], swapped[f], SWAP_CARD) > 0.2
        assert _changed(outputs["kept"][f], swapped[f], SWAP_CARD) < 0.02


def test_a_blink_beside_a_card_over_the_mouth_still_closes_the_eye(tmp_path: Path) -> None:
    """The eye beside the card looks aside on the covered frames, unlike the face's median: it
    joined the card's mask, and the blink was held back there. Compared with the face's own
    other frames too (``synthesis.occluders.STATE_ROWS``), the eye is no occluder: it closes as
    it does with occluders not looked for, while the card still keeps its pixels."""
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    src = _mouth_card_clip(tmp_path / "card.mkv")
    cache = tmp_path / "cache"
    schedule = EditSchedule((EditEntry(0, "blink_right", StrengthCurve.over_range(1.0, 6, 33, 2)),))
    outputs = {}
    for name, kw in (("kept", {}), ("bent", {"occluders": None})):
        out = tmp_path / f"{name}.mkv"
        run_edit(EditJob(RenderJob(src, out, OutputConfig(codec="ffv1")), schedule, cache_dir=cache, **kw))
        with VideoReader(out) as reader:
            outputs[name] = [f.image for f in reader]
    with VideoReader(src) as reader:
        inputs = [f.image for f in reader]
    eye = (slice(230, 270), slice(170, 240))  # the subject's right eye
    for f in range(14, 30):
        closed = {k: _changed(outputs[k][f], inputs[f], eye) for k in outputs}
        assert closed["bent"] > 0.3 and closed["kept"] > 0.8 * closed["bent"], (f, closed)
        assert _changed(outputs["kept"][f], inputs[f], (slice(300, None), slice(150, 370))) < 0.02


def test_a_late_swap_keeps_the_plate_s_card_on_its_own_frames(tmp_path: Path) -> None:
    """A swap exported two frames late, restored with ``offset=2``: the card found on the plate's
    frames 14-29 is carried to the swap's 16-31, where the swap shows it, and keeps its pixels."""
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    plate, _, swapped = _card_swap(tmp_path)
    late = [swapped[0], swapped[0], *swapped[:-2]]
    swap = write_clip(tmp_path / "late.mkv", codec="ffv1", pix_fmt="bgr0", images=late)
    outputs, summaries = _restored_both_ways(tmp_path, plate, swap, offset=2)
    shifted = range(SWAP_CARD_FRAMES[0] + 2, SWAP_CARD_FRAMES[-1] + 3)
    assert [e["frames"] for e in summaries["kept"].occluders] == [[shifted[0], shifted[-1]]]
    for f in shifted:
        assert _changed(outputs["bent"][f], late[f], SWAP_CARD) > 0.2
        assert _changed(outputs["kept"][f], late[f], SWAP_CARD) < 0.02
