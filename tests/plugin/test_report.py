"""The QC report: its numbers, its files, and the page as headless Chromium shows it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from plugin.report import (
    ReportConfig,
    build_report,
    check_report_dir,
    key_blendshapes,
    most_changed_frames,
    write_report,
)
from plugin.report_svg import Chart, Series, chart_svg
from synthesis.clamps import ClampEvent
from synthesis.controls import named_controls
from synthesis.plan import FacePlan
from tests.plugin.media import pattern_image, write_clip
from tracking.analysis import Track
from tracking.errors import OutputError
from tracking.mediapipe_results import BLENDSHAPE_NAMES

CHROMIUM = Path("/usr/bin/chromium")
#: Degrees / scores: the report rounds angles to 1e-3 and scores to 1e-4.
ANGLE_TOL = 1e-3
SCORE_TOL = 1e-4
FRAMES, SIZE = 24, 96
EDITED = np.arange(6, 14)  # frames 6-13 are edited
SHIFT_PX = 3.0


def synthetic_track(frames: int = FRAMES) -> Track:
    """A face (478 points on a ring around the centre) on every frame, slowly turning."""
    rng = np.random.default_rng(0)
    n = frames
    ring = np.stack([np.cos(np.linspace(0, 2 * np.pi, 478)), np.sin(np.linspace(0, 2 * np.pi, 478))], 1)
    pts = SIZE / 2 + 20 * ring * rng.uniform(0.5, 1.0, (478, 1))
    lm = np.repeat(np.concatenate([pts, np.zeros((478, 1))], 1)[None], n, 0).astype(np.float32)
    angles = np.stack([np.linspace(-5, 5, n), np.full(n, 2.0), np.zeros(n)], 1).astype(np.float32)
    bs = np.full((n, 52), 0.1, np.float32)
    eye = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    box = np.tile(np.array([SIZE / 2 - 20, SIZE / 2 - 20, SIZE / 2 + 20, SIZE / 2 + 20], np.float32), (n, 1))
    return Track(0, np.arange(n, dtype=np.int64), np.arange(n) / 25.0, np.zeros(n, np.int32), lm, bs, eye, angles,
                 lm.copy(), bs.copy(), eye.copy(), angles.copy(), np.ones(n, np.float32), box, np.zeros(n, np.uint8))


def synthetic_plan(track: Track) -> FacePlan:
    before = track.landmarks[EDITED]
    after = before.copy()
    after[:, :, 0] += SHIFT_PX * np.linspace(0.5, 1.0, EDITED.size)[:, None]  # most change at the end
    m = EDITED.size
    strengths = {"head_yaw": np.full(m, 10.0), "smile": np.linspace(0.2, 0.7, m)}
    events = (ClampEvent(0, "head_yaw", 8, 11, 14.0, 10.0),)
    return FacePlan(0, EDITED.astype(np.int64), EDITED / 25.0, np.zeros(m, np.int32), before, after, strengths, events)


def clips(tmp_path: Path) -> tuple[Path, Path]:
    src = [pattern_image(i, SIZE, SIZE) for i in range(FRAMES)]
    out = [img.copy() for img in src]
    for i in EDITED:
        out[i][30:66, 30:66] = 255 - out[i][30:66, 30:66]  # the "edit": the face region changes
    return write_clip(tmp_path / "in.mp4", images=src), write_clip(tmp_path / "out.mp4", images=out)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    track = synthetic_track()
    plan = synthetic_plan(track)
    src, out = clips(tmp)
    deltas = named_controls()
    write_report(tmp / "qc", [track], [plan], {n: deltas[n] for n in plan.strengths}, frame_count=FRAMES,
                 frame_times=np.arange(FRAMES) / 25.0, input_path=src, output_path=out,
                 config=ReportConfig(thumbnails=2))
    return tmp / "qc"


def test_report_json_holds_before_after_and_the_edit(report_dir: Path) -> None:
    rep = json.loads((report_dir / "report.json").read_text())
    track, deltas = synthetic_track(), named_controls()
    face = rep["faces"][0]
    assert face["edited_ranges"] == [[int(EDITED[0]), int(EDITED[-1])]]
    yaw = face["angles_deg"]["yaw"]
    assert yaw["before"] == pytest.approx(track.angles[:, 0].tolist(), abs=ANGLE_TOL)
    expect = track.angles[:, 0].astype(np.float64).copy()
    plan = synthetic_plan(track)
    for name, s in plan.strengths.items():
        expect[EDITED] += s * deltas[name].pose[0]
    assert yaw["after"] == pytest.approx(expect.tolist(), abs=ANGLE_TOL)
    unedited = np.setdiff1d(np.arange(FRAMES), EDITED)
    assert np.allclose(np.array(yaw["after"])[unedited], np.array(yaw["before"])[unedited])
    # blendshapes: the ones smile moves most come first, and after = before + strength x change
    smile = deltas["smile"].blendshapes
    top = BLENDSHAPE_NAMES[int(np.argmax(np.abs(smile)))]
    assert next(iter(face["blendshapes"])) == top
    got = np.array(face["blendshapes"][top]["after"])[EDITED]
    want = np.clip(0.1 + plan.strengths["smile"] * smile[BLENDSHAPE_NAMES.index(top)], 0, 1)
    assert got == pytest.approx(want, abs=SCORE_TOL)
    assert face["clamps"] == [{"delta": "head_yaw", "frames": [8, 11], "requested": 14.0, "applied": 10.0}]
    shift = np.array(face["landmark_shift_px"], dtype=float)
    assert shift[EDITED[-1]] == pytest.approx(SHIFT_PX, abs=1e-3) and np.all(shift[unedited] == 0)
    # thumbnails: the largest shift (the last edited frame) is among them; files exist, sized
    assert [t["frame"] for t in rep["thumbnails"]][-1] == int(EDITED[-1])
    for t in rep["thumbnails"]:
        for key in ("before", "after", "diff"):
            img = cv2.imread(str(report_dir / t[key]))
            assert img is not None and max(img.shape[:2]) == ReportConfig().thumb_size
        assert t["max_abs_pixel_change"] > 100  # the inverted square is in the crop


def test_page_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "index.html").read_text()
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", page)
    for src in re.findall(r"src='([^']+)'", page):
        assert (report_dir / src).is_file(), src
    assert page.count("<svg") >= 3 + 4 + 2  # yaw/pitch/roll, 4 blendshapes, strengths, shift
    assert "clamp: head_yaw frames 8-11" in page


def _moved_track(track: Track, track_id: int, dx: float, dyaw: float) -> Track:
    boxes = track.boxes + np.array([dx, 0, dx, 0], np.float32)
    angles = track.angles + np.array([dyaw, 0, 0], np.float32)
    return Track(track_id, track.frame_indices, track.times, track.segment_ids, track.landmarks, track.blendshapes,
                 track.transforms, angles, track.raw_landmarks, track.raw_blendshapes, track.raw_transforms,
                 track.raw_angles, track.confidence, boxes, track.sources)


def test_measured_values_come_from_the_overlapping_track_of_the_output() -> None:
    track = synthetic_track()
    plan = synthetic_plan(track)
    deltas = named_controls()
    same, elsewhere = _moved_track(track, 7, 2.0, 1.5), _moved_track(track, 3, 200.0, 0.0)
    kwargs = dict(frame_count=FRAMES, frame_times=np.arange(FRAMES) / 25.0, input_path=Path("in.mp4"),
                  output_path=Path("out.mp4"))
    rep = build_report([track], [plan], {n: deltas[n] for n in plan.strengths}, measured=[elsewhere, same], **kwargs)
    face = rep["faces"][0]
    assert face["measured_track"]["id"] == 7 and face["measured_track"]["mean_box_iou"] > 0.9
    assert face["angles_deg"]["yaw"]["measured"] == pytest.approx((track.angles[:, 0] + 1.5).tolist(), abs=ANGLE_TOL)
    assert all("measured" in v for v in face["blendshapes"].values())
    alone = build_report([track], [plan], {n: deltas[n] for n in plan.strengths}, measured=[elsewhere], **kwargs)
    assert alone["faces"][0]["measured_track"] is None
    assert "measured" not in alone["faces"][0]["angles_deg"]["yaw"]


def test_most_changed_frames_covers_each_edit_first() -> None:
    shift = np.zeros(60)
    shift[5:10] = 0.5  # a small edit
    shift[30:50] = np.linspace(1, 3, 20)  # a large one
    picks = most_changed_frames([shift], 3)
    frames = [f for f, _ in picks]
    assert any(5 <= f < 10 for f in frames) and 49 in frames and len(frames) == 3
    assert most_changed_frames([np.zeros(10)], 3) == []
    names = key_blendshapes(np.zeros((5, 52)), 3)
    assert names == ["mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft"]


def test_chart_breaks_lines_at_missing_values() -> None:
    svg = chart_svg(Chart("t", "", np.arange(6), [Series("a", [0, 1, np.nan, np.nan, 2, 3], "#000")]))
    path = re.search(r'<path d="(M[^"]+)" fill="none"', svg)
    assert path is not None and path.group(1).count("M") == 2  # two pieces, no line across the gap


def test_report_folder_checks(tmp_path: Path) -> None:
    assert check_report_dir(tmp_path / "new") == tmp_path / "new"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="not a deltaface report"):
        check_report_dir(other, overwrite=True)
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.json").write_text("{}")
    with pytest.raises(OutputError, match="--overwrite"):
        check_report_dir(old)
    assert check_report_dir(old, overwrite=True) == old
    with pytest.raises(OutputError, match="does not exist"):
        check_report_dir(tmp_path / "missing" / "qc")


_CHECK_IMAGES = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  const p = document.createElement('pre');
  p.id = 'image-check';
  p.textContent = JSON.stringify({images: imgs.length, broken: broken,
                                  svgs: document.querySelectorAll('svg').length});
  document.body.appendChild(p);
});
</script>"""


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (/usr/bin/chromium) is not installed; "
                    ".ci/run installs it with apt-get where it can")
def test_chromium_renders_the_page_with_every_image(report_dir: Path, tmp_path: Path) -> None:
    # The check script goes into a copy beside the page (same folder: same relative image paths);
    # the report itself holds no script.
    page = (report_dir / "index.html").read_text()
    probe = report_dir / "_check.html"
    probe.write_text(page.replace("</body>", _CHECK_IMAGES + "</body>"))
    try:
        dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], tmp_path / "profile")
    finally:
        probe.unlink()
    found = re.search(r'<pre id="image-check">([^<]+)</pre>', dom.stdout)
    assert found is not None, dom.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] == 3 * 2 and result["broken"] == [], result
    assert result["svgs"] >= 9
    shot = tmp_path / "shot.png"
    _chromium(["--screenshot=" + str(shot), "--window-size=1200,1600", (report_dir / "index.html").as_uri()],
              tmp_path / "profile")
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1600, 1200)
    # something was drawn: the page is not blank (the thumbnails and charts have colour)
    assert float(img.std()) > 10


def test_edit_with_a_timeline_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real path (PyAV, MediaPipe, the edit, re-tracking): a marker of an .otio cut, edited, reported."""
    import opentimelineio as otio

    from plugin.cli import run
    from plugin.demo import MotionSettings, write_demo_clip

    clip = write_demo_clip(tmp_path / "demo.mp4", MotionSettings(num_frames=20))
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    tl = otio.schema.Timeline(name="cut")
    track = otio.schema.Track(name="V1")
    tl.tracks.append(track)
    track.append(otio.schema.Clip(name="demo", source_range=tr(rt(0, 25), rt(20, 25))))
    track.markers.append(otio.schema.Marker(name="smile here", marked_range=tr(rt(8, 25), rt(6, 25))))
    otio.adapters.write_to_file(tl, str(tmp_path / "cut.otio"))
    code = run(["edit", str(clip), "-o", str(tmp_path / "out.mp4"), "--face", "0", "--timeline",
                str(tmp_path / "cut.otio"), "--delta", "smile=0.6@marker:smile here~0", "--report",
                str(tmp_path / "qc"), "--report-retrack", "--cache-dir", str(tmp_path / "cache"), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["timeline_deltas"] == {"smile=0.6@marker:smile here~0": "smile=0.6@8-13~0"}
    rep = json.loads((tmp_path / "qc" / "report.json").read_text())
    assert rep["faces"][0]["edited_ranges"] == [[8, 13]]
    assert all(8 <= t["frame"] <= 13 for t in rep["thumbnails"]) and rep["thumbnails"]
    assert summary["report"] == str(tmp_path / "qc" / "index.html")
    # the output was tracked again: the smile is measured on it (mouthSmile rises where it was edited)
    face = rep["faces"][0]
    assert face["measured_track"] is not None
    smile = np.array(face["blendshapes"]["mouthSmileLeft"]["measured"], dtype=float)
    before = np.array(face["blendshapes"]["mouthSmileLeft"]["before"], dtype=float)
    assert np.nanmean(smile[8:14] - before[8:14]) > np.nanmean(np.abs(smile[:6] - before[:6]))


def test_page_lists_texture_sources_and_clamps() -> None:
    from plugin.report_html import render_html

    track = synthetic_track()
    plan = synthetic_plan(track)
    deltas = named_controls()
    texture = [
        {"face": 0, "region": "mouth", "frames": [7, 31], "action": "texture", "exemplars": ["clip:26"],
         "runs": [[7, 31, "clip:26"]]},
        {"face": 0, "region": "eye_left", "frames": [39, 47], "action": "clamp",
         "reason": "no exemplar in the target state in the clip or references", "factor": 0.562},
    ]
    from plugin.report import build_report

    rep = build_report([track], [plan], {n: deltas[n] for n in plan.strengths}, frame_count=FRAMES,
                       frame_times=np.arange(FRAMES) / 25.0, input_path=Path("in.mp4"), output_path=Path("out.mp4"),
                       config=ReportConfig(thumbnails=0), extra={"summary": {"texture": texture}})
    page = render_html(rep)
    assert "Texture from other frames" in page
    assert "7-31: clip:26" in page
    assert "strength x 0.562" in page and "class=clamp>clamp" in page
    rep_without = build_report([track], [plan], {n: deltas[n] for n in plan.strengths}, frame_count=FRAMES,
                               frame_times=np.arange(FRAMES) / 25.0, input_path=Path("in.mp4"),
                               output_path=Path("out.mp4"), config=ReportConfig(thumbnails=0))
    assert "Texture from other frames" not in render_html(rep_without)


def test_page_lists_what_covers_the_face() -> None:
    from plugin.report import build_report
    from plugin.report_html import render_html

    track = synthetic_track()
    plan = synthetic_plan(track)
    deltas = {n: named_controls()[n] for n in plan.strengths}
    common = dict(frame_count=FRAMES, frame_times=np.arange(FRAMES) / 25.0, input_path=Path("in.mp4"),
                  output_path=Path("out.mp4"), config=ReportConfig(thumbnails=0))
    occluders = [{"face": 0, "frames": [14, 29], "action": "occluded", "share": 0.656}]
    page = render_html(build_report([track], [plan], deltas, extra={"summary": {"occluders": occluders}}, **common))
    assert "What covers the face" in page and "<td>14-29</td><td>66%</td>" in page
    assert "What covers the face" not in render_html(build_report([track], [plan], deltas, **common))
