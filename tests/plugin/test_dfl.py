"""The DeepFaceLab adapter: APP15 metadata, and the drop-in .sh round trip on a built workspace.

The workspace is built here as DeepFaceLab lays it out (FACTS.md): ``data_dst.mp4`` (H.264 with
AAC audio), ``data_dst/%05d.png`` (the plate: frames of the LivePortrait fixture clip),
``data_dst/merged/`` (the "swap": the plate with the first frame's face pasted over the last
frames, where the plate closes its eyes and ends its smile: a swap model that sticks), ``data_dst/merged_mask/`` (single-channel masks) and ``data_dst/aligned/`` JPEGs
carrying a pickled metadata dict in APP15, written the way DFL does (``pickle.dumps``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from plugin.dfl import MASK_OUT, MERGED_OUT, VIDEO_OUT, app15_payload, read_aligned_metadata
from tests.plugin.media import write_clip
from tracking.errors import HostFormatError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / ".." / "shared" / "fixtures"
SCRIPT = REPO / "plugin" / "dfl_scripts" / "deltaface_dfl.sh"
FRAMES = 8
#: The workspace's frames are the fixture's frames START.. (the eyes close and the smile ends there).
START = 60
SIZE = 256
FPS = 25
#: Frames whose face is frozen (the first frame's face pasted) in the merged "swap".
FROZEN = (4, 7)


def jpeg_with_app15(image: np.ndarray, payload: bytes) -> bytes:
    """A JPEG of ``image`` (RGB) with ``payload`` in an APP15 segment right after SOI."""
    ok, enc = cv2.imencode(".jpg", image[:, :, ::-1])
    assert ok
    data = enc.tobytes()
    return data[:2] + b"\xff\xef" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def dfl_metadata(stem: str, centre: tuple[float, float], size: float) -> dict:
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    pts = np.stack([centre[0] + size * np.cos(t), centre[1] + 1.2 * size * np.sin(t)], 1).astype(np.float32)
    return {"face_type": "whole_face", "landmarks": (pts - pts.min(0)).tolist(), "source_filename": f"{stem}.png",
            "source_rect": (int(pts[:, 0].min()), int(pts[:, 1].min()), int(pts[:, 0].max()), int(pts[:, 1].max())),
            "source_landmarks": pts, "image_to_face_mat": np.eye(2, 3, dtype=np.float32),
            "eyebrows_expand_mod": 1.0, "seg_ie_polys": None, "xseg_mask": None}


def build_workspace(root: Path, hostile: bytes | None = None) -> Path:
    """A small DFL workspace (see the module doc); ``hostile`` replaces the first aligned pickle."""
    src = FIXTURES / "liveportrait_d0.mp4"
    if not src.is_file():
        pytest.skip(f"{src} not found (the shared fixtures are needed for a real face)")
    with av.open(str(src)) as c:
        frames = []
        for k, f in enumerate(c.decode(video=0)):
            if k < START:
                continue
            frames.append(cv2.resize(f.to_ndarray(format="rgb24"), (SIZE, SIZE), interpolation=cv2.INTER_AREA))
            if len(frames) == FRAMES:
                break
    ws = root / "workspace"
    dst = ws / "data_dst"
    for sub in ("merged", "merged_mask", "aligned"):
        (dst / sub).mkdir(parents=True)
    # the plate as DFL's data_dst.mp4, with an AAC track that `dfl video` must carry over
    write_clip(ws / "data_dst.mp4", images=frames, rate=FPS, time_base=Fraction(1, FPS), audio_seconds=FRAMES / FPS)
    oval = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(oval, (128, 125), (52, 70), 0, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(oval.astype(np.float32) / 255, (0, 0), 4)[..., None]
    for i, img in enumerate(frames):
        stem = f"{i + 1:05d}"
        cv2.imwrite(str(dst / f"{stem}.png"), img[:, :, ::-1])
        merged = img
        if FROZEN[0] <= i <= FROZEN[1]:
            merged = np.round(img * (1 - alpha) + frames[0] * alpha).astype(np.uint8)
        cv2.imwrite(str(dst / "merged" / f"{stem}.png"), merged[:, :, ::-1])
        cv2.imwrite(str(dst / "merged_mask" / f"{stem}.png"), oval)
        payload = pickle.dumps(dfl_metadata(stem, (128.0, 125.0), 50.0))
        if hostile is not None and i == 0:
            payload = hostile
        (dst / "aligned" / f"{stem}_0.jpg").write_bytes(jpeg_with_app15(img[60:190, 60:190], payload))
    return ws


def tree_hashes(*folders: Path) -> dict[str, str]:
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")) if folder.is_dir() else [folder]:
            if p.is_file() and MERGED_OUT not in p.parts and MASK_OUT not in p.parts:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class _System:
    """Pickles as a call of os.system (what a hostile aligned file would hold)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_app15_metadata_round_trip(tmp_path):
    meta = dfl_metadata("00001", (100.0, 90.0), 40.0)
    path = tmp_path / "00001_0.jpg"
    path.write_bytes(jpeg_with_app15(np.zeros((64, 64, 3), np.uint8), pickle.dumps(meta, protocol=2)))
    got = read_aligned_metadata(path)
    assert got is not None and got["source_filename"] == "00001.png"
    np.testing.assert_array_equal(got["source_landmarks"], meta["source_landmarks"])
    assert got["source_landmarks"].dtype == np.float32
    plain = tmp_path / "plain.jpg"
    ok, enc = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    plain.write_bytes(enc.tobytes())
    assert read_aligned_metadata(plain) is None
    with pytest.raises(HostFormatError, match="runs past"):
        app15_payload(b"\xff\xd8\xff\xef\x10\x00abc", "cut.jpg")


@pytest.mark.parametrize("protocol", [2, 4])
def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "PWNED"
    ws = build_workspace(tmp_path, hostile=pickle.dumps({"x": _System(f"touch {marker}")}, protocol=protocol))
    before = tree_hashes(ws)
    from plugin.cli import run

    with pytest.raises(HostFormatError, match=r"(posix|os|nt)\.system"):
        run(["dfl", "fix", str(ws), "--quiet", "--cache-dir", str(tmp_path / "cache")])
    assert not marker.exists()
    assert tree_hashes(ws) == before
    assert not (ws / "data_dst" / MERGED_OUT).exists() and not (ws / "data_dst" / MASK_OUT).exists()
    assert not any(p.name.startswith(".") for p in (ws / "data_dst").iterdir())  # no temporary left


def test_hostile_pickle_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    marker = tmp_path / "PWNED"
    ws = build_workspace(tmp_path, hostile=pickle.dumps(_System(f"touch {marker}")))
    proc = subprocess.run([sys.executable, "-m", "plugin", "dfl", "fix", str(ws)], capture_output=True, text=True,
                          env=dict(os.environ, DELTAFACE_CACHE=str(tmp_path / "cache")), timeout=120)
    assert proc.returncode == 2
    assert "refused" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_sh_script_round_trip(tmp_path):
    ws = build_workspace(tmp_path)
    dst = ws / "data_dst"
    before = tree_hashes(ws)
    env = dict(os.environ, DELTAFACE=f"{sys.executable} -m plugin", DELTAFACE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(["sh", str(SCRIPT), str(ws), "--no-verify"], capture_output=True, text=True, env=env,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = tree_hashes(ws)
    assert {k: v for k, v in after.items() if k in before} == before  # DFL's files are untouched
    assert set(after) - set(before) == {str(ws / VIDEO_OUT)}
    # outputs: same stems, count and resolution as merged/
    merged = sorted(p.name for p in (dst / "merged").glob("*.png"))
    assert sorted(p.name for p in (dst / MERGED_OUT).glob("*.png")) == merged
    assert sorted(p.name for p in (dst / MASK_OUT).glob("*.png")) == merged
    changed_frames = 0
    for name in merged:
        m = cv2.imread(str(dst / "merged" / name))
        o = cv2.imread(str(dst / MERGED_OUT / name))
        dfl_mask = cv2.imread(str(dst / "merged_mask" / name), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(dst / MASK_OUT / name), cv2.IMREAD_UNCHANGED)
        assert o.shape == m.shape and mask.shape == dfl_mask.shape
        assert np.all(mask >= dfl_mask)  # DFL's mask is kept ...
        changed = (o != m).any(axis=2)
        assert np.all(mask[changed] == 255)  # ... and where deltaface changed pixels is added
        if changed.any():
            changed_frames += 1
        else:
            assert (dst / MASK_OUT / name).read_bytes() == (dst / "merged_mask" / name).read_bytes()
    assert changed_frames >= 1
    # result_deltaface.mp4 at data_dst.mp4's rate, with its audio
    with av.open(str(ws / VIDEO_OUT)) as c, av.open(str(ws / "data_dst.mp4")) as ref:
        v = c.streams.video[0]
        assert sum(1 for _ in c.demux(v) if _.size) == FRAMES
        assert v.average_rate == ref.streams.video[0].average_rate
        assert c.streams.audio and c.streams.audio[0].codec_context.name == ref.streams.audio[0].codec_context.name
        assert "deltaface" in c.metadata.get("comment", "")


def test_the_source_faceset_lends_texture_and_a_broken_one_is_skipped(tmp_path, caplog):
    """data_src/aligned holds the person swapped IN: its closed-eye faces are reference stills.
    (Here the swap is the plate's own person, so the plate's closed-eye frames stand in for it.)"""
    import logging

    from plugin.dfl import DflFixJob, fix_workspace
    from plugin.restore import RestoreJob
    from synthesis.restore import RestoreConfig

    caplog.set_level(logging.WARNING, logger="plugin.dfl")  # a --quiet run elsewhere may have raised the root level
    ws = build_workspace(tmp_path)
    src = ws / "data_src" / "aligned"
    src.mkdir(parents=True)
    for name in sorted((ws / "data_dst").glob("*.png"))[FROZEN[0]:FROZEN[1] + 1]:
        img = cv2.imread(str(name))
        cv2.imwrite(str(src / f"{name.stem}_0.jpg"), img[40:220, 40:220])
    settings = RestoreJob(Path("p"), Path("s"), Path("o"), config=RestoreConfig(refine_rounds=0), verify=False,
                          cache_dir=tmp_path / "cache")
    result = fix_workspace(ws, DflFixJob(settings, overwrite=True))
    assert result.src_references == FROZEN[1] - FROZEN[0] + 1
    used = [x for e in result.restore.plan.texture_events if e["action"] == "texture" for x in e["exemplars"]]
    assert any(x.startswith("reference:") for x in used), used
    off = fix_workspace(ws, DflFixJob(settings, overwrite=True, src_references=False))
    assert off.src_references == 0
    # A faceset that cannot be read only costs a warning.
    for p in src.iterdir():
        p.write_bytes(b"not a jpeg")
    broken = fix_workspace(ws, DflFixJob(settings, overwrite=True))
    assert broken.src_references == 0 and broken.frames == FRAMES
    assert any("data_src" in r.getMessage() for r in caplog.records)
