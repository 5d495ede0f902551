"""Publishing a finished file: readable as the umask allows, then renamed into place."""

from __future__ import annotations

import os

__all__ = ["publish"]


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` the mode a plain ``open(path, "w")`` would (0666 less the umask), then
    rename it to ``path`` atomically. ``tempfile.mkstemp`` makes files 0600, which would
    keep a closure from the colleagues the umask means to share it with."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)
