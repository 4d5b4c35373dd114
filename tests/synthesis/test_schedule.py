"""Strength schedules: curves, combination, clamps and zero-phase smoothing keep their promises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthesis.schedule import (
    ClampEvent,
    CombinedLimit,
    EditEntry,
    EditSchedule,
    Keyframe,
    StrengthCurve,
    StrengthSmoothing,
    clamp_combined,
    clamp_strengths,
    resolve_track,
    smooth_strengths,
)
from tracking.errors import ConfigError

#: Floating-point slack for values that are equal in exact arithmetic (sums of normalized weights).
FP_TOL = 1e-12
CLIP = np.arange(120)


def test_keyframes_are_sorted_and_validated() -> None:
    c = StrengthCurve((Keyframe(20, 1.0), Keyframe(10, 0.0)))
    assert [k.frame for k in c.keyframes] == [10, 20]
    with pytest.raises(ConfigError):
        StrengthCurve((Keyframe(10, 0.0), Keyframe(10, 1.0)))
    with pytest.raises(ConfigError):
        StrengthCurve(())
    with pytest.raises(ConfigError):
        StrengthCurve((Keyframe(1, 1.0),), ease="cubic")  # type: ignore[arg-type]
    for frame, strength in [(1.5, 0.0), (True, 0.0), (1, float("nan")), (1, float("inf")), (1, "1")]:
        with pytest.raises(ConfigError):
            Keyframe(frame, strength)  # type: ignore[arg-type]


def test_curve_hits_keyframes_and_is_zero_outside() -> None:
    kfs = (Keyframe(10, 0.0), Keyframe(20, 0.8), Keyframe(40, -0.3), Keyframe(50, 0.0))
    for ease in ("smooth", "linear"):
        c = StrengthCurve(kfs, ease=ease)
        s = c.evaluate(CLIP)
        assert [s[k.frame] for k in kfs] == [k.strength for k in kfs]
        assert np.all(s[:10] == 0.0) and np.all(s[50:] == 0.0)
        # Halfway between two keyframes both eases are at the middle value.
        assert s[30] == pytest.approx((0.8 - 0.3) / 2, abs=FP_TOL)
    smooth = StrengthCurve(kfs[:2]).evaluate(CLIP)
    linear = StrengthCurve(kfs[:2], ease="linear").evaluate(CLIP)
    # Smoothstep starts and ends slower than linear (zero slope at the keyframes).
    assert smooth[11] < linear[11] and smooth[19] > linear[19]
    assert np.all(np.diff(smooth[10:21]) > 0)


@pytest.mark.parametrize("ramp", [0, 1, 4, 9])
def test_range_is_full_on_named_frames_and_eases_outside(ramp: int) -> None:
    a, b, strength = 30, 60, 0.8
    s = StrengthCurve.over_range(strength, a, b, ramp=ramp).evaluate(CLIP)
    assert np.all(s[a : b + 1] == strength)
    assert np.all(s[: a - max(ramp, 1) + 1] == 0.0) and np.all(s[b + max(ramp, 1) :] == 0.0)
    partial = np.r_[s[a - ramp + 1 : a], s[b + 1 : b + ramp]] if ramp > 1 else np.zeros(0)
    assert np.all((partial > 0) & (partial < strength))
    assert np.all(np.diff(s[a - ramp : a + 1]) >= 0) and np.all(np.diff(s[b : b + ramp + 1]) <= 0)


def test_range_edge_cases() -> None:
    # A ramp reaching before the clip is cut there: frame 0 is partly edited, frame 2 fully.
    s = StrengthCurve.over_range(1.0, 2, 5, ramp=6).evaluate(CLIP)
    assert 0 < s[0] < s[1] < 1 and s[2] == 1.0
    # Open end: full to the last frame whatever the clip length; whole clip: constant.
    s = StrengthCurve.over_range(-8.0, 50, None, ramp=4).evaluate(np.arange(1000))
    assert np.all(s[50:] == -8.0) and s[46] == 0.0 and -8.0 < s[48] < 0
    assert np.all(StrengthCurve.constant(0.5).evaluate(CLIP) == 0.5)
    # One frame.
    s = StrengthCurve.over_range(1.0, 10, 10, ramp=0).evaluate(CLIP)
    assert np.flatnonzero(s).tolist() == [10]
    for bad in [(-1, 5, 2), (5, 4, 2), (5, 6, -1)]:
        with pytest.raises(ConfigError):
            StrengthCurve.over_range(1.0, *bad)


def test_per_frame_sums_same_delta_and_keeps_others_apart() -> None:
    a = StrengthCurve.over_range(0.5, 10, 30, ramp=3)
    b = StrengthCurve.over_range(0.25, 20, 50, ramp=0)
    c = StrengthCurve.constant(3.0)
    sched = EditSchedule((EditEntry(1, "smile", a), EditEntry(1, "smile", b), EditEntry(1, "head_yaw", c),
                          EditEntry(2, "blink_left", a)))
    got = sched.per_frame(1, CLIP)
    assert set(got) == {"smile", "head_yaw"}
    np.testing.assert_array_equal(got["smile"], a.evaluate(CLIP) + b.evaluate(CLIP))
    np.testing.assert_array_equal(got["head_yaw"], c.evaluate(CLIP))
    assert set(sched.per_frame(2, CLIP)) == {"blink_left"}
    assert sched.per_frame(7, CLIP) == {}
    assert sched.face_ids() == (1, 2) and sched.delta_names() == ("smile", "head_yaw", "blink_left")
    with pytest.raises(ConfigError):
        EditEntry(-1, "smile", a)
    with pytest.raises(ConfigError):
        EditEntry(1, " ", a)


def test_hard_clamp_keeps_range_and_records_runs() -> None:
    s = np.zeros(40)
    s[5:9] = [0.9, 1.4, 1.6, 0.9]
    s[20:23] = [-0.7, -2.0, -0.1]
    s[30:33] = 1.2
    other = np.linspace(-5, 5, 40)
    out, events = clamp_strengths({"smile": s, "free": other}, {"smile": (-0.5, 1.0)},
                                  frame_indices=np.arange(100, 140), face_id=3)
    assert np.all((out["smile"] >= -0.5) & (out["smile"] <= 1.0))
    np.testing.assert_array_equal(out["free"], other)
    changed = out["smile"] != s
    np.testing.assert_array_equal(out["smile"][~changed], s[~changed])
    assert events == [
        ClampEvent(3, "smile", 106, 107, 1.6, 1.0),
        ClampEvent(3, "smile", 120, 121, -2.0, -0.5),
        ClampEvent(3, "smile", 130, 132, 1.2, 1.0),
    ]
    # A gap in the track's frames splits a run.
    f = np.r_[0:31, 32:41]
    _, events = clamp_strengths({"smile": s}, {"smile": (-0.5, 1.0)}, frame_indices=f, face_id=3)
    assert [(e.first_frame, e.last_frame) for e in events][-2:] == [(30, 30), (32, 33)]
    with pytest.raises(ConfigError, match="contain 0"):
        clamp_strengths({"smile": s}, {"smile": (0.1, 1.0)}, frame_indices=np.arange(40), face_id=3)
    with pytest.raises(ConfigError):
        clamp_strengths({"smile": s[:5]}, {}, frame_indices=np.arange(40), face_id=3)


def test_smoothed_clamp_stays_in_range_without_kinks_or_reach() -> None:
    cfg = StrengthSmoothing(sigma_frames=1.5)
    s = StrengthCurve.over_range(20.0, 40, 70, ramp=10).evaluate(CLIP)
    hard, _ = clamp_strengths({"yaw": s}, {"yaw": (-15, 15)}, frame_indices=CLIP, face_id=0)
    soft, events = clamp_strengths({"yaw": s}, {"yaw": (-15, 15)}, frame_indices=CLIP, face_id=0, smoothing=cfg)
    y = soft["yaw"]
    assert np.all(np.abs(y) <= 15.0) and np.all(np.abs(y) <= np.abs(s))
    # Smoother than the hard clip where it bends onto the limit.
    assert np.abs(np.diff(y, 2)).max() < 0.5 * np.abs(np.diff(hard["yaw"], 2)).max()
    # Untouched beyond two radii of the clipped frames (min-filter, then blur).
    clipped = np.flatnonzero(np.abs(s) > 15.0)
    reach = 2 * cfg.radius
    far = (CLIP < clipped[0] - reach) | (CLIP > clipped[-1] + reach)
    np.testing.assert_array_equal(y[far], s[far])
    changed = np.flatnonzero(y != s)
    assert [(e.first_frame, e.last_frame) for e in events] == [(changed[0], changed[-1])]
    assert events[0].requested == 20.0 and events[0].applied == pytest.approx(15.0, abs=FP_TOL)


def test_combined_limit_scales_deltas_together() -> None:
    yaw = StrengthCurve.over_range(12.0, 20, 60, ramp=5).evaluate(CLIP)
    extra = StrengthCurve.over_range(1.0, 40, 80, ramp=5).evaluate(CLIP)  # 6° of yaw per unit
    pitch = StrengthCurve.constant(4.0).evaluate(CLIP)
    limit = CombinedLimit.linear("|yaw|", {"head_yaw": 1.0, "learned_turn": 6.0}, 15.0)
    strengths = {"head_yaw": yaw, "learned_turn": extra, "head_pitch": pitch}
    for smoothing in (None, StrengthSmoothing()):
        out, events = clamp_combined(strengths, limit, frame_indices=CLIP, face_id=1, smoothing=smoothing)
        total = np.abs(out["head_yaw"] + 6.0 * out["learned_turn"])
        assert total.max() <= 15.0 * (1 + FP_TOL)
        np.testing.assert_array_equal(out["head_pitch"], pitch)
        both = (yaw != 0) & (extra != 0)
        np.testing.assert_allclose(out["head_yaw"][both] / out["learned_turn"][both], yaw[both] / extra[both])
        assert len(events) == 1 and events[0].requested == 18.0
        over = np.flatnonzero(np.abs(yaw + 6.0 * extra) > 15.0)
        assert events[0].first_frame <= over[0] and events[0].last_frame >= over[-1]
    assert clamp_combined({"head_pitch": pitch}, limit, frame_indices=CLIP, face_id=1)[1] == []
    squared = CombinedLimit("sq", ("head_yaw",), 15.0, lambda s: s["head_yaw"] ** 2)
    with pytest.raises(ConfigError, match="homogeneous"):
        clamp_combined(strengths, squared, frame_indices=CLIP, face_id=1)
    with pytest.raises(ConfigError):
        CombinedLimit.linear("|yaw|", {"head_yaw": 1.0}, 0.0)


def test_smoothing_keeps_constants_and_does_not_delay_a_step() -> None:
    cfg = StrengthSmoothing(sigma_frames=2.0)
    gappy = np.r_[0:10, 14:30, 31:60]
    for f in (CLIP, gappy):
        np.testing.assert_allclose(smooth_strengths(np.full(f.size, 0.7), f, cfg), 0.7, rtol=0, atol=FP_TOL)
    k = 50
    step = (CLIP >= k).astype(float)
    out = smooth_strengths(step, CLIP, cfg)
    assert out[k - 1] < 0.5 < out[k]
    assert out[k - 1] + out[k] == pytest.approx(1.0, abs=FP_TOL)
    assert np.all(np.diff(out) >= 0)
    # Zero phase: smoothing commutes with reversing time.
    s = np.random.default_rng(0).normal(size=CLIP.size)
    np.testing.assert_allclose(smooth_strengths(s[::-1], CLIP, cfg), smooth_strengths(s, CLIP, cfg)[::-1],
                               atol=FP_TOL)
    np.testing.assert_array_equal(smooth_strengths(s, CLIP, StrengthSmoothing(sigma_frames=0)), s)
    with pytest.raises(ConfigError):
        smooth_strengths(s, CLIP[::-1], cfg)
    for bad in [dict(sigma_frames=-1), dict(truncate=0), dict(zero_below=1.0)]:
        with pytest.raises(ConfigError):
            StrengthSmoothing(**bad)


def test_smoothing_leaves_unedited_frames_exactly_zero() -> None:
    cfg = StrengthSmoothing(sigma_frames=2.0)
    a, b, ramp = 40, 60, 4
    s = StrengthCurve.over_range(0.9, a, b, ramp=ramp).evaluate(CLIP)
    out = smooth_strengths(s, CLIP, cfg)
    reach = ramp + cfg.radius
    far = (CLIP <= a - reach) | (CLIP >= b + reach)
    assert np.all(out[far] == 0.0)
    nonzero = np.abs(out[out != 0])
    assert nonzero.min() >= cfg.zero_below * 0.9


def test_resolve_track_named_frames_full_and_limits_hold() -> None:
    sched = EditSchedule((
        EditEntry(4, "blink_left", StrengthCurve.over_range(0.8, 10, 12, ramp=2)),
        EditEntry(4, "head_yaw", StrengthCurve.over_range(20.0, 30, 80, ramp=6)),
        EditEntry(5, "smile", StrengthCurve.constant(1.0)),
    ))
    limits = {"blink_left": (0.0, 1.0), "head_yaw": (-15.0, 15.0)}
    r = resolve_track(sched, 4, CLIP, limits=limits)
    assert set(r.strengths) == {"blink_left", "head_yaw"} and r.track_id == 4
    # Not clamped, not Gaussian-smoothed by default: a 3-frame blink keeps its full strength.
    np.testing.assert_array_equal(r.strengths["blink_left"], sched.per_frame(4, CLIP)["blink_left"])
    assert np.all(np.abs(r.strengths["head_yaw"]) <= 15.0)
    assert [e.delta for e in r.events] == ["head_yaw"]
    with pytest.raises(ValueError):
        r.strengths["head_yaw"][0] = 1.0
    smoothed = resolve_track(sched, 4, CLIP, limits=limits, smoothing=StrengthSmoothing(smooth_requested=True))
    assert np.all(np.abs(smoothed.strengths["head_yaw"]) <= 15.0)
    assert smoothed.strengths["blink_left"].max() < 0.8
    assert resolve_track(sched, 9, CLIP).strengths == {}


# --- properties -------------------------------------------------------------------------------

_frames = st.lists(st.integers(0, 300), min_size=1, max_size=8, unique=True)
_strength = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(frames=_frames, data=st.data(), ease=st.sampled_from(["smooth", "linear"]))
def test_curve_stays_within_keyframes_and_zero_outside(frames: list[int], data: st.DataObject, ease: str) -> None:
    strengths = data.draw(st.lists(_strength, min_size=len(frames), max_size=len(frames)))
    c = StrengthCurve(tuple(Keyframe(f, s) for f, s in zip(frames, strengths)), ease=ease)  # type: ignore[arg-type]
    f = np.arange(-20, 340)
    s = c.evaluate(f)
    lo, hi = min(strengths), max(strengths)
    inside = (f >= min(frames)) & (f <= max(frames))
    assert np.all((s[inside] >= lo - FP_TOL) & (s[inside] <= hi + FP_TOL))
    assert np.all(s[~inside] == 0.0)


@settings(max_examples=150, deadline=None)
@given(a=st.integers(0, 200), length=st.integers(0, 60), ramp=st.integers(0, 30), strength=_strength,
       sigma=st.floats(0, 4))
def test_range_curve_and_smoothing_have_bounded_support(
    a: int, length: int, ramp: int, strength: float, sigma: float
) -> None:
    b = a + length
    f = np.arange(0, 320)
    s = StrengthCurve.over_range(strength, a, b, ramp=ramp).evaluate(f)
    assert np.all(s[a : b + 1] == strength)
    assert np.all(s[(f <= a - max(ramp, 1)) | (f >= b + max(ramp, 1))] == 0.0)
    cfg = StrengthSmoothing(sigma_frames=sigma)
    out = smooth_strengths(s, f, cfg)
    reach = max(ramp, 1) + cfg.radius
    assert np.all(out[(f <= a - reach) | (f >= b + reach)] == 0.0)
    lo, hi = min(strength, 0.0), max(strength, 0.0)
    assert np.all((out >= lo - FP_TOL * (1 + abs(strength))) & (out <= hi + FP_TOL * (1 + abs(strength))))


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=80),
       lo=st.floats(-10, 0), hi=st.floats(0, 10), sigma=st.floats(0, 3))
def test_smoothed_clamp_never_leaves_limits(values: list[float], lo: float, hi: float, sigma: float) -> None:
    s = np.array(values)
    f = np.arange(s.size)
    out, events = clamp_strengths({"d": s}, {"d": (lo, hi)}, frame_indices=f, face_id=0,
                                  smoothing=StrengthSmoothing(sigma_frames=sigma))
    assert np.all((out["d"] >= lo) & (out["d"] <= hi))
    assert np.all(np.abs(out["d"]) <= np.abs(s))
    changed = set(np.flatnonzero(out["d"] != s).tolist())
    covered = {int(x) for e in events for x in range(e.first_frame, e.last_frame + 1)}
    assert changed == covered
