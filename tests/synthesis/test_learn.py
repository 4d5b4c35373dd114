"""Learning deltas from example pairs: identity cancels, the change transfers without leaking."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from synthesis import regions as rg
from synthesis.codespace import FLIP, invert_single, render_code
from synthesis.deltas import apply_delta, identity_change, load_delta, save_delta
from synthesis.learn import learn_delta, pair_change
from tracking.errors import InputError
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.mediapipe_results import BLENDSHAPE_NAMES
from tracking.pose import matrix_from_euler

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"

#: Frames of liveportrait_d0.mp4 (25 fps): neutral at the start, a broad smile in the middle,
#: eyes closed (and the smile gone) at 2.68 s. Checked by blendshape scores in the test below.
NEUTRAL, NEUTRAL_2, NEUTRAL_3, SMILE, SMILE_2, SMILE_3, EYES_CLOSED = 5, 2, 12, 40, 30, 50, 67
#: The target's shape outside the delta's region may change by at most this (inter-ocular units).
IDENTITY_TOL = 0.01
#: Two pairs that differ only in the person's identity give displacements this close.
CANCEL_TOL = 0.005
#: A pure turn between before and after is read back within this (degrees).
POSE_TOL_DEG = 0.5


def _fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"shared fixture {path} not present")
    return path


@pytest.fixture(scope="module")
def faces() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Landmarks and blendshapes of a few real frames and the astronaut (real landmarker)."""
    import av

    wanted = {NEUTRAL, NEUTRAL_2, NEUTRAL_3, SMILE, SMILE_2, SMILE_3, EYES_CLOSED}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm:
        with av.open(str(_fixture("liveportrait_d0.mp4"))) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    face = lm.detect_image(frame.to_ndarray(format="rgb24"), i)[0]
                    out[f"d0_{i}"] = (face.landmarks.astype(np.float64), face.blendshapes)
                if i >= max(wanted):
                    break
        image = cv2.cvtColor(cv2.imread(str(_fixture("skimage_astronaut.png"))), cv2.COLOR_BGR2RGB)
        face = lm.detect_image(image)[0]
        out["astronaut"] = (face.landmarks.astype(np.float64), face.blendshapes)
    return out


def _score(faces: dict[str, tuple[np.ndarray, np.ndarray]], frame: int, name: str) -> float:
    return float(faces[f"d0_{frame}"][1][BLENDSHAPE_NAMES.index(name)])


def _pair(faces: dict[str, tuple[np.ndarray, np.ndarray]], a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    return faces[f"d0_{a}"][0], faces[f"d0_{b}"][0]


def _mean_region(delta_region: np.ndarray, ids: tuple[int, ...]) -> float:
    return float(delta_region[list(ids)].mean())


def test_the_frames_show_what_the_tests_assume(faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    assert _score(faces, NEUTRAL, "mouthSmileLeft") < 0.05 and _score(faces, NEUTRAL, "eyeBlinkLeft") < 0.3
    assert _score(faces, SMILE, "mouthSmileLeft") > 0.7
    assert _score(faces, EYES_CLOSED, "eyeBlinkLeft") > 0.5 and _score(faces, EYES_CLOSED, "mouthSmileLeft") < 0.05


def test_eyes_closed_learned_on_one_man_closes_the_astronauts_eyes_only(
    faces: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    before, after = _pair(faces, NEUTRAL, EYES_CLOSED)
    delta, report = learn_delta(
        [(before, after)],
        "eyes_closed",
        blendshape_pairs=[(faces[f"d0_{NEUTRAL}"][1], faces[f"d0_{EYES_CLOSED}"][1])],
    )
    assert report.pairs == 1 and report.region_points > 10
    eyes = rg.LEFT_EYE_UPPER + rg.RIGHT_EYE_UPPER
    assert _mean_region(delta.region, eyes) > 0.4
    assert _mean_region(delta.region, rg.LIPS) < 0.05  # the mouth did not come along
    assert delta.blendshapes[BLENDSHAPE_NAMES.index("eyeBlinkLeft")] > 0.3

    target, _ = faces["astronaut"]
    identity, code = invert_single(target)
    edited = render_code(identity, apply_delta(code, identity, delta, 1.0))
    change = identity_change(target, edited, delta.region)
    assert change.rms < IDENTITY_TOL and change.max < IDENTITY_TOL
    shape = identity.shape + apply_delta(code, identity, delta, 1.0).expression
    for side in rg.EYES:
        opened = rg.lid_clearance(identity.shape, side).mean()
        assert rg.lid_clearance(shape, side).mean() < 0.5 * opened  # the region moved
    assert np.abs(edited[list(rg.LIPS)] - target[list(rg.LIPS)]).max() < 0.01 * rg.inter_ocular(target)


def test_smile_learned_on_one_man_transfers_to_the_astronaut(faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    delta, report = learn_delta([_pair(faces, NEUTRAL, SMILE)], "smile")
    assert _mean_region(delta.region, rg.MOUTH_CORNERS_OUTER) > 0.9
    assert _mean_region(delta.region, rg.LEFT_BROW + rg.RIGHT_BROW) < 0.05
    target, _ = faces["astronaut"]
    identity, code = invert_single(target)
    edited_code = apply_delta(code, identity, delta, 0.5)
    change = identity_change(target, render_code(identity, edited_code), delta.region)
    assert change.rms < IDENTITY_TOL and change.max < IDENTITY_TOL
    corners = list(rg.MOUTH_CORNERS_OUTER)
    lift = (edited_code.expression[corners, 1] - code.expression[corners, 1]) / identity.inter_ocular
    assert np.all(lift > 0.02)  # the corners go up on the astronaut too
    assert report.background_iod < 0.1


def test_the_first_persons_identity_cancels(faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Give the man another nose, chin and face width (same change of expression): the learned
    displacement stays the same, and carries none of the new identity."""
    before, after = _pair(faces, NEUTRAL, EYES_CLOSED)
    base = pair_change(before, after).displacement

    def reshape(landmarks: np.ndarray) -> np.ndarray:
        identity, code = invert_single(landmarks)
        shape = identity.shape.copy()
        nose = list(rg.NOSE)
        shape[nose, 2] += 0.6  # a longer nose
        shape[list(rg.JAW), 1] -= 0.5  # a longer chin
        shape[list(rg.FACE_OVAL), 0] *= 1.08  # a wider face
        return code.pose.to_pixels(shape)

    # the same pixel motion of the change, on the reshaped face
    other_before = reshape(before)
    other_after = other_before + (after - before)
    other = pair_change(other_before, other_after).displacement
    eyes = list(rg.LEFT_EYE + rg.RIGHT_EYE)
    assert np.abs(other[eyes] - base[eyes]).max() < CANCEL_TOL + 0.05 * np.abs(base[eyes]).max()
    # nothing of the reshaping shows up in the change
    assert np.abs(other[list(rg.NOSE)]).max() < np.abs(base[list(rg.NOSE)]).max() + CANCEL_TOL
    assert np.abs(pair_change(other_before, other_before).displacement).max() < 1e-9


def test_pose_between_before_and_after_is_read_not_learned_as_expression(
    faces: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    before, after = _pair(faces, NEUTRAL, EYES_CLOSED)
    identity, code = invert_single(after)
    turn = matrix_from_euler(6.0, 0.0, 0.0)
    turned = code.pose.scale * (identity.shape @ (FLIP @ turn @ code.pose.rotation).T) + code.pose.translation
    plain, plain_report = learn_delta([(before, after)], "plain")
    mixed, _ = learn_delta([(before, turned)], "turned")
    assert plain.kind == "expression" and mixed.kind == "mixed"
    assert not plain.pose.any()  # the man's own turn of about a degree stays below the threshold
    assert mixed.pose[0] - plain_report.pose_changes[0][0] == pytest.approx(6.0, abs=POSE_TOL_DEG)
    assert np.abs(mixed.displacement - plain.displacement).max() < 0.01


def test_consistency_report_tells_consistent_from_mixed_pairs(faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    smiles = [_pair(faces, NEUTRAL, SMILE), _pair(faces, NEUTRAL_2, SMILE_2), _pair(faces, NEUTRAL_3, SMILE_3)]
    delta, good = learn_delta(smiles, "smile3")
    assert good.pairs == 3 and min(good.cosine) > 0.95 and good.relative_spread < 0.25
    assert delta.provenance["pairs"] == 3
    _, bad = learn_delta([_pair(faces, NEUTRAL, SMILE), _pair(faces, NEUTRAL_2, EYES_CLOSED)], "mixed_up")
    assert min(bad.cosine) < 0.7 and bad.relative_spread > 2 * good.relative_spread


def test_a_learned_delta_round_trips_through_a_file(
    faces: dict[str, tuple[np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    delta, _ = learn_delta([_pair(faces, NEUTRAL, SMILE)], "smile", source="liveportrait_d0.mp4 frames 5 -> 40")
    path = tmp_path / "smile.json"
    save_delta(path, delta)
    back = load_delta(path)
    assert back.provenance == delta.provenance and "frames 5 -> 40" in back.provenance["source"]
    assert np.abs(back.displacement - delta.displacement).max() <= 1e-5


def test_bad_pairs_are_refused() -> None:
    with pytest.raises(InputError):
        learn_delta([], "nothing")
    with pytest.raises(InputError):
        learn_delta([(np.zeros((468, 3)), np.zeros((478, 3)))], "short")
    with pytest.raises(InputError):
        learn_delta([(np.full((478, 3), np.nan), np.zeros((478, 3)))], "nan")
