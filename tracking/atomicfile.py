"""Writing a small file so that it appears whole or not at all.

For the files deltaface's libraries write themselves (analysis caches, delta files); video
outputs go through ``plugin/output.py``, which also handles folders and overwrite rules.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tracking.errors import OutputError


def write_atomically(target: Path, write: Callable[[BinaryIO], None], what: str) -> None:
    """Write ``target`` through a temporary file beside it, renamed into place when complete.

    The file gets the permissions a plain ``open`` would give (0666 less the umask), not
    ``mkstemp``'s 0600. On failure the temporary file is removed and ``target`` is untouched.

    Args:
        target: the final path; its folder must exist.
        write: writes the whole content to the binary file object it is given.
        what: what the file is, for the error message ("the analysis", "the delta file").

    Raises:
        OutputError: the folder is missing or not writable, or writing failed.
    """
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{target}: cannot write {what} ({exc.strerror or exc})") from exc
