"""Errors raised by deltaface.

Every error deltaface raises on purpose derives from :class:`DeltafaceError`, and most also
derive from the matching built-in (as PyAV does), so callers can catch either. Messages are one
line: what was wrong, with which file or frame, and what to do. Only the command-line entry point
turns these into exit codes (2 for bad input or output, see ``plugin/__main__.py``).
"""

from __future__ import annotations


class DeltafaceError(Exception):
    """Base of every error deltaface raises on purpose."""


class InputError(DeltafaceError, ValueError):
    """An input file is missing, unreadable, not a video, or has no usable stream."""


class TruncatedInputError(InputError):
    """The input ended early or has undecodable data; frames before ``stopped_at`` are good.

    Attributes:
        stopped_at: index of the first frame that could not be decoded (= frames decoded).
    """

    def __init__(self, message: str, stopped_at: int) -> None:
        super().__init__(message)
        self.stopped_at = stopped_at


class OutputError(DeltafaceError, OSError):
    """An output cannot be written: it exists (without overwrite), or its folder is not writable."""


class ConfigError(DeltafaceError, ValueError):
    """A setting, option or project-file value is invalid."""


class ModelLoadError(DeltafaceError, RuntimeError):
    """A model bundle is missing, corrupt, or does not match its checksum."""


class HostFormatError(DeltafaceError, ValueError):
    """A host tool's file (DeepFaceLab metadata, FaceSwap alignments) is malformed or unsafe."""
