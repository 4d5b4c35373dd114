"""Atomic output paths: check early, write under a hidden temporary name, rename when complete.

Every output deltaface writes (a video file or a PNG-sequence folder) goes through
:class:`AtomicOutput`: the work happens under a hidden temporary name in the same folder as the
final output (so the final rename never crosses a filesystem), and the final name appears only
when the output is complete. On failure the temporary file or folder is removed and nothing is
left under the final name. An existing output is never replaced without ``overwrite``, and an
output is never the input itself.

A process killed outright (SIGKILL, power loss) cannot remove its temporary output. Each writer
holds an advisory lock (``flock``) on its temporary file or folder while it works; the kernel
drops it when the process dies. The next :class:`AtomicOutput` for the same final name removes
the temporary FILES of that name nobody holds (a live writer's are kept), and leaves temporary
FOLDERS alone: an image-sequence render continues from one with ``--resume``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from tracking.errors import OutputError

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so nothing is ever judged stale
    fcntl = None  # type: ignore[assignment]

#: Marker in every temporary name deltaface creates (``.NAME.deltaface-tmp-XXXXXXXX.EXT``).
TEMP_MARKER = ".deltaface-tmp-"
#: A folder output may be replaced (with ``overwrite``) only if it is empty or holds this file,
#: i.e. it was written by deltaface; any other folder is refused rather than deleted.
FOLDER_OWNER_FILE = "provenance.json"


def temp_path_for(path: Path) -> Path:
    """A fresh hidden temporary path beside ``path`` that keeps its extension.

    Keeping the extension lets the muxer pick the container format from the name.

    Args:
        path: the final output path.

    Returns:
        ``path.parent / ".{stem}.deltaface-tmp-{8 hex}{suffix}"``; nothing is created.
    """
    token = secrets.token_hex(4)
    return path.parent / f".{path.stem}{TEMP_MARKER}{token}{path.suffix}"


def _lock(path: Path, *, wait: bool) -> int | None:
    """An fd holding an exclusive ``flock`` on ``path`` (None: no locks here, or held elsewhere)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        return None
    return fd


def temp_paths(path: Path) -> list[Path]:
    """Every temporary file or folder :func:`temp_path_for` could have made for ``path`` that
    exists beside it now (symlinks excluded), sorted by name."""
    if not path.parent.is_dir():
        return []
    pattern = re.compile(re.escape(f".{path.stem}{TEMP_MARKER}") + r"[0-9a-f]{8}" + re.escape(path.suffix))
    return [p for p in sorted(path.parent.iterdir()) if pattern.fullmatch(p.name) and not p.is_symlink()]


def stale_temps(path: Path) -> list[Path]:
    """Temporary FILES left beside ``path`` by writers of the same name that died (no lock held).

    Args:
        path: the final output path.

    Returns:
        Those files (not folders: see the module docstring), sorted.
    """
    if fcntl is None:
        return []
    stale = []
    for p in temp_paths(path):
        if not p.is_file():
            continue
        fd = _lock(p, wait=False)
        if fd is not None:
            os.close(fd)
            stale.append(p)
    return stale


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    is_folder: bool = False,
) -> Path:
    """Check that ``path`` can be written, before any work is done.

    Args:
        path: the final output (a file, or a folder when ``is_folder``).
        overwrite: whether an existing output may be replaced.
        inputs: input files or folders; the output must be none of them.
        is_folder: the output is a folder (a PNG sequence), not a file.

    Returns:
        The output path, absolute.

    Raises:
        OutputError: the output is an input; its folder is missing, not a folder or not
            writable; it exists and ``overwrite`` is False; or it exists as the wrong kind
            (a folder where a file goes, or a folder deltaface did not write).
    """
    out = Path(path).absolute()
    for item in inputs:
        if _same_file(out, Path(item)):
            raise OutputError(f"{out}: the output is the input; choose another output name")
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"{parent}: output folder does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: output folder is not writable")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputError(f"{out}: output exists; pass overwrite to replace it")
        if is_folder:
            if not out.is_dir():
                raise OutputError(f"{out}: exists and is not a folder; remove it first")
            entries = [p.name for p in out.iterdir()]
            if entries and FOLDER_OWNER_FILE not in entries:
                raise OutputError(
                    f"{out}: folder exists and was not written by deltaface (no "
                    f"{FOLDER_OWNER_FILE}); refusing to replace it"
                )
        elif out.is_dir():
            raise OutputError(f"{out}: exists and is a folder; remove it or choose a file name")
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


class AtomicOutput:
    """A temporary path that becomes the final output on :meth:`commit`, or vanishes.

    Use as a context manager: ``with AtomicOutput(out) as tmp: write(tmp)``. Leaving the block
    normally commits (renames the temporary file or folder to the final name, replacing an
    existing output only with ``overwrite``); leaving it by an exception removes the temporary
    output and leaves the final name untouched.

    Attributes:
        final: the output path (absolute).
        temp: the temporary path beside it (same folder, hidden, same extension).
        is_folder: whether the output is a folder.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        inputs: Iterable[str | os.PathLike[str]] = (),
        is_folder: bool = False,
    ) -> None:
        self.final = check_output_path(path, overwrite=overwrite, inputs=inputs, is_folder=is_folder)
        self.overwrite = overwrite
        self.is_folder = is_folder
        self.temp = temp_path_for(self.final)
        self._done = False
        self._lock_fd: int | None = None
        for old in stale_temps(self.final):
            _remove(old)  # a killed writer's leftover (no process holds its lock)
        try:
            if is_folder:
                self.temp.mkdir()
            else:
                os.close(os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except OSError as exc:
            what = "a folder" if is_folder else "a file"
            raise OutputError(f"{self.final.parent}: cannot create {what} there ({exc.strerror})") from exc
        # Held until commit or abort; the writer opens the same inode, so the lock covers its work.
        self._lock_fd = _lock(self.temp, wait=True)

    def commit(self) -> Path:
        """Rename the temporary output to the final name.

        Returns:
            The final path.

        Raises:
            OutputError: the final name appeared meanwhile (without ``overwrite``) or the rename
                failed; the temporary output is removed.
        """
        if self._done:
            return self.final
        try:
            if not self.temp.exists() or (not self.is_folder and self.temp.stat().st_size == 0):
                raise OutputError(f"{self.final}: nothing was written")
            exists = self.final.exists() or self.final.is_symlink()
            if exists and not self.overwrite:
                raise OutputError(f"{self.final}: output appeared while writing; not replaced")
            if self.is_folder and exists:
                # Folders cannot be replaced in one rename: move the old one aside first.
                old = temp_path_for(self.final)
                os.replace(self.final, old)
                os.replace(self.temp, self.final)
                _remove(old)
            else:
                os.replace(self.temp, self.final)
        except OutputError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.final}: could not rename the finished output ({exc})") from exc
        self._done = True
        self._unlock()
        return self.final

    def abort(self) -> None:
        """Remove the temporary output; the final name is left untouched."""
        _remove(self.temp)
        self._done = True
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Path:
        return self.temp

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
