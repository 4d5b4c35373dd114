"""Project files: settings into the config dataclasses, errors naming file, line and key, paths
confined to the project's folder, and a parser that only ever raises deltaface's own errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from compositing.blend import BlendConfig
from plugin.project import is_project_file, load_project
from synthesis.plan import PlanConfig
from tests.plugin.media import write_clip
from tests.reliability.test_hostile_files import TOML_VALUES, _toml_value
from tracking.errors import ConfigError, DeltafaceError
from tracking.smoothing import SmoothingConfig

NUM_FRAMES = 30
FPS = 25

FUZZ = settings(max_examples=int(os.environ.get("DELTAFACE_FUZZ_EXAMPLES", "60")), deadline=None,
                derandomize="DELTAFACE_FUZZ_EXAMPLES" not in os.environ, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside every project, holding a clip (an editor's media folder)."""
    folder = tmp_path_factory.mktemp("media")
    write_clip(folder / "plate.mp4", num_frames=NUM_FRAMES, rate=FPS)
    return folder


@pytest.fixture()
def project_dir(tmp_path: Path, media: Path) -> Path:
    folder = tmp_path / "proj"
    (folder / "plates").mkdir(parents=True)
    (folder / "renders").mkdir()
    os.link(media / "plate.mp4", folder / "plates" / "shot.mp4")
    (tmp_path / "outside").mkdir()
    (folder / "escape").symlink_to(tmp_path / "outside")
    return folder


def write(folder: Path, text: str) -> Path:
    path = folder / "shot.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


GOOD = """version = 1
input = "plates/shot.mp4"

[output]
path = "renders/shot.mp4"
codec = "h264"
crf = 20
preset = "veryfast"

[tracking]
num_faces = 2

[tracking.smoothing]
landmarks = { evidence_low = 2.0, evidence_high = 4.0 }

[plan]
max_yaw_deg = 12.0

[blend]
method = "laplacian"
feather = 0.05

[[edit]]
face = 0
delta = "smile"
strength = 0.5
frames = "00:00:00:05-20"

[[edit]]
face = 1
delta = "head_yaw"
keyframes = [[0, 0.0], [10, 8.0], [29, 0.0]]
"""


def test_a_full_project_lands_in_the_config_dataclasses(project_dir: Path) -> None:
    p = load_project(write(project_dir, GOOD))
    assert p.input == (project_dir / "plates" / "shot.mp4").resolve()
    assert p.output == (project_dir / "renders" / "shot.mp4").resolve()
    assert (p.output_config.codec, p.output_config.crf, p.output_config.preset) == ("h264", 20, "veryfast")
    assert p.analysis.landmarker.num_faces == 2
    default_smoothing = SmoothingConfig()
    assert p.analysis.tracking.smoothing.landmarks.evidence_low == 2.0
    assert p.analysis.tracking.smoothing.rigid == default_smoothing.rigid  # untouched fields keep defaults
    assert p.plan == PlanConfig(max_yaw_deg=12.0)
    assert p.render_config.blend == BlendConfig(method="laplacian", feather=0.05)
    entries = list(p.schedule)
    assert [(e.face_id, e.delta_name) for e in entries] == [(0, "smile"), (1, "head_yaw")]
    # timecode 00:00:00:05 at 25 fps is frame 5: full strength there, eased before
    values = entries[0].curve.evaluate([0, 5, 20])
    assert values[1] == pytest.approx(0.5) and values[2] == pytest.approx(0.5)
    assert values[0] == pytest.approx(0.0)


def test_source_alignment_can_be_turned_off(project_dir: Path) -> None:
    base = 'version = 1\ninput = "plates/shot.mp4"\n[output]\npath = "out"\ncodec = "png"\n[tracking]\n'
    assert load_project(write(project_dir, base)).analysis.tracking.align_sources is True
    assert load_project(write(project_dir, base + "align_sources = false\n")).analysis.tracking.align_sources is False
    with pytest.raises(ConfigError, match="'align_sources': 1 is not true or false"):
        load_project(write(project_dir, base + "align_sources = 1\n"))


def test_a_minimal_project_takes_every_default(project_dir: Path) -> None:
    p = load_project(write(project_dir, 'version = 1\ninput = "plates/shot.mp4"\n[output]\npath = "out"\n'
                                        'codec = "png"\n'))
    assert p.plan == PlanConfig() and p.render_config.blend == BlendConfig()
    assert len(p.schedule) == 0 and p.output_config.codec == "png"
    assert is_project_file(p.path) and not is_project_file(p.input)


@pytest.mark.parametrize(("change", "line", "needle"), [
    (("crf = 20", "crf = 99"), 7, "[output] 'crf': crf must be an integer 0-51"),
    (("preset = \"veryfast\"", "preset = 3"), 8, "[output] 'preset': 3 is not a string"),
    (("num_faces = 2", "num_faces = 99"), 11, "[tracking] 'num_faces'"),
    (("max_yaw_deg = 12.0", "max_yaw_degs = 12.0"), 17, "[plan] 'max_yaw_degs': unknown key"),
    (("method = \"laplacian\"", "method = \"median\""), 20, "[blend]"),
    (("feather = 0.05", "feather = -1.0"), 21, "[blend] 'feather'"),
    (("evidence_low = 2.0,", "evidence_low = true,"), 14, "[tracking.smoothing.landmarks] 'evidence_low'"),
    (("version = 1", "version = 2"), 1, "'version': must be 1"),
    (("strength = 0.5", "strength = \"strong\""), 26, "[[edit]] #1 'strength'"),
    (("frames = \"00:00:00:05-20\"", "frames = \"5-30\""), 27, "outside the clip"),
    (("face = 1", "face = -1"), 30, "[[edit]] #2 'face'"),
])
def test_errors_name_the_file_line_and_key(project_dir: Path, change: tuple[str, str], line: int,
                                           needle: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        load_project(write(project_dir, text))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{project_dir / 'shot.toml'}:{line}:"), message
    assert needle in message, message


def test_invalid_toml_names_the_line(project_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"shot.toml:3: invalid TOML"):
        load_project(write(project_dir, 'version = 1\ninput = "plates/shot.mp4"\n[output\n'))


@pytest.mark.parametrize(("key", "ref", "needle"), [
    ("input", "../outside/x.mp4", "outside the project's folder"),
    ("input", "escape/x.mp4", "outside the project's folder"),  # a symlink out
    ("input", "plates/missing.mp4", "missing.mp4 does not exist"),
    ("path", "../renders.mp4", "outside the project's folder"),
    ("path", "escape/out.mp4", "outside the project's folder"),
    ("path", "/tmp/elsewhere.mp4", "is absolute"),
    ("path", "renders/x.mov.png", "codec h264 is written to"),
])
def test_paths_may_not_escape_the_project_folder(project_dir: Path, key: str, ref: str, needle: str) -> None:
    text = GOOD.replace('"plates/shot.mp4"' if key == "input" else '"renders/shot.mp4"', json.dumps(ref))
    with pytest.raises(ConfigError, match=needle) as info:
        load_project(write(project_dir, text))
    line = 2 if key == "input" else 5
    assert str(info.value).startswith(f"{project_dir / 'shot.toml'}:{line}:"), str(info.value)


def test_an_absolute_input_is_the_users_choice(project_dir: Path, media: Path) -> None:
    """Editors keep media elsewhere: an absolute input path is read (never written)."""
    p = load_project(write(project_dir, GOOD.replace('"plates/shot.mp4"', json.dumps(str(media / "plate.mp4")))))
    assert p.input == (media / "plate.mp4").resolve()


def test_the_output_may_not_be_the_input(project_dir: Path) -> None:
    text = GOOD.replace('"renders/shot.mp4"', '"plates/shot.mp4"')
    with pytest.raises(ConfigError, match="'path': is the input"):
        load_project(write(project_dir, text))


# ---------------------------------------------------------------------------------------------
# Hostile project files (as tests/reliability/test_hostile_files.py does for edit lists)

PATHS = st.sampled_from([
    "plates/shot.mp4", "plates/../plates/shot.mp4", "../outside/x.mp4", "escape/x.mp4", "/etc/passwd",
    "~/x.mp4", "plates/shot.mp4\x00x", "", "renders/out", "renders/out.mp4", "renders/out.mkv",
    "....//x.mp4", "plates\\..\\..\\x.mp4", "/dev/zero",
]) | st.text(max_size=16)
SECTIONS = {
    "output": ["codec", "crf", "preset", "pix_fmt", "keyframe_seconds", "bogus"],
    "tracking": ["num_faces", "bundle", "bogus"],
    "plan": ["max_yaw_deg", "max_pitch_deg", "clamp_to_range", "bogus"],
    "blend": ["method", "dilate", "feather", "levels", "floor", "bogus"],
}


@st.composite
def projects(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from(["1", "1", "2", '"1"', "true"]))
    lines = [f"version = {version}", f"input = {_toml_value(draw(PATHS))}"]
    if draw(st.integers(0, 5)):
        lines.append(f"{draw(st.sampled_from(['bogus', 'plan', 'edit']))} = {_toml_value(draw(TOML_VALUES))}")
    for section, keys in SECTIONS.items():
        if not draw(st.booleans()):
            continue
        lines.append(f"[{section}]")
        if section == "output":
            lines.append(f"path = {_toml_value(draw(PATHS))}")
        for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
            value = draw(PATHS) if key in ("bundle",) else draw(TOML_VALUES | st.sampled_from(
                ["png", "h264", "ffv1", "laplacian", "poisson", "ultrafast"]))
            lines.append(f"{key} = {_toml_value(value)}")
    for _ in range(draw(st.integers(0, 2))):
        lines += ["[[edit]]", f"face = {draw(st.integers(-1, 2))}", 'delta = "smile"',
                  f"strength = {_toml_value(draw(st.floats(-2, 2)))}",
                  f"frames = {_toml_value(draw(st.sampled_from(['0-5', '25-40', '00:00:00:30', '3'])))}"]
    return "\n".join(lines) + "\n"


def _check_project(folder: Path, text: str) -> None:
    path = write(folder, text)
    try:
        project = load_project(path)
    except DeltafaceError as e:
        assert "\n" not in str(e), str(e)
        return
    base = folder.resolve()
    assert project.output.is_relative_to(base), project.output
    raw = text.split("input = ", 1)[1].splitlines()[0]
    if not json.loads(raw).startswith(("/", "~")):
        assert project.input.is_relative_to(base), project.input


@FUZZ
@given(text=projects())
@example(text='version = 1\ninput = "escape/x.mp4"\n[output]\npath = "out.mp4"\n')
@example(text='version = 1\ninput = "plates/shot.mp4"\n[output]\npath = "escape/out"\ncodec = "png"\n')
@example(text='version = 1\ninput = "plates/shot.mp4"\n[output]\npath = "o.mp4"\ncrf = 1e400\n')
@example(text='version = 1\ninput = "plates/shot.mp4"\n[output]\npath = "o.mp4"\n[blend]\nlevels = 1e30\n')
@example(text='version = 1\ninput = "plates/shot.mp4"\n[output]\npath = "o.mp4"\n[tracking]\nsmoothing = 3\n')
def test_project_loader_on_generated_files(project_dir: Path, text: str) -> None:
    _check_project(project_dir, text)


@FUZZ
@given(text=st.text(max_size=300))
@example(text="version = 1\ninput = 5\n")
@example(text='version = 1\ninput = "plates/shot.mp4"\noutput = []\n')
@example(text="version = 1\n" + "x = [" * 5000)
def test_project_loader_on_arbitrary_text(project_dir: Path, text: str) -> None:
    try:
        load_project(write(project_dir, text))
    except DeltafaceError as e:
        assert "\n" not in str(e), str(e)


def test_the_command_line_does_not_override_the_projects_codec(project_dir: Path) -> None:
    from plugin.cli import run

    path = write(project_dir, GOOD)
    with pytest.raises(ConfigError, match="--codec, --crf cannot be combined with a project file"):
        run(["render", str(path), "--codec", "png", "--crf", "30", "--quiet"])
    assert list((project_dir / "renders").iterdir()) == []
