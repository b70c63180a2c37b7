"""Local-path confinement: which files on the server a visitor may name (the app's local-path mode).

The host lists allowed folders (the app reads them from EXPLORER_LOCAL_DIRS, `os.pathsep`-separated; none means
local paths are off). A path is allowed when, after resolving every symlink and '..', it lies inside one of
them, component-wise (so /data2 is not inside /data), and is a regular file or a folder. For a folder, each
entry the loader may open (its `.safetensors` files and index) must resolve inside too: a symlink in an
allowed folder cannot point the loader elsewhere. Relative paths are taken relative to the first allowed
folder. Pure functions over the filesystem; every refusal is a ValueError saying why.

What this cannot do: a path is checked, then opened later. If untrusted users can write into an allowed folder,
they can swap a checked file for a symlink in between; hosts should keep the allowed folders read-only to
everyone but themselves (the Docker image mounts them read-only).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Sequence

MAX_PATH_CHARS = 4096      # PATH_MAX on Linux; longer input is refused before touching the filesystem
MAX_FOLDER_ENTRIES = 10_000  # a model folder has tens of files; bounds the scan of a hostile one
OPENED_SUFFIXES = (".safetensors", ".json")  # what the loader opens inside a model folder


def allowed_dirs(raw: str | None) -> tuple[Path, ...]:
    """The host's allowed folders from an EXPLORER_LOCAL_DIRS-style string (`os.pathsep`-separated),
    resolved; empty when unset or blank. Raises ValueError for an entry that is relative or not a folder,
    so a typo in the host's configuration is loud rather than silently allowing nothing or the wrong place."""
    out = []
    for part in (raw or "").split(os.pathsep):
        if not part.strip():
            continue
        p = Path(part.strip())
        if not p.is_absolute():
            raise ValueError(f"allowed folder {part!r} must be an absolute path")
        if not p.is_dir():
            raise ValueError(f"allowed folder {part!r} is not an existing folder")
        out.append(p.resolve())
    return tuple(out)


def _inside(p: Path, allowed: Sequence[Path]) -> bool:
    return any(p == d or p.is_relative_to(d) for d in allowed)


def _resolve(text: str, base: Path) -> Path:
    if "\x00" in text:
        raise ValueError("the path contains a NUL character")
    if len(text) > MAX_PATH_CHARS:
        raise ValueError(f"the path is longer than {MAX_PATH_CHARS} characters")
    p = Path(text)
    try:
        return (p if p.is_absolute() else base / p).resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop, a name too long
        raise ValueError(f"{text!r} cannot be resolved ({e.__class__.__name__})") from None


def _check_folder(folder: Path, allowed: Sequence[Path], shown: str) -> None:
    """Every entry the loader may open in `folder` must resolve inside the allowed folders."""
    try:
        entries = os.scandir(folder)
    except OSError as e:
        raise ValueError(f"{shown!r} cannot be listed ({e.strerror})") from None
    with entries:
        for n, entry in enumerate(entries):
            if n >= MAX_FOLDER_ENTRIES:
                raise ValueError(f"{shown!r} holds more than {MAX_FOLDER_ENTRIES} entries")
            if not entry.name.lower().endswith(OPENED_SUFFIXES):
                continue
            target = Path(entry.path).resolve()
            if not _inside(target, allowed):
                raise ValueError(f"{entry.name!r} in {shown!r} links outside the folders this server allows")


def confine(path_text: str, allowed: Sequence[Path]) -> Path:
    """The resolved path of `path_text` if it is a regular file or folder inside `allowed` (resolved
    folders, as from `allowed_dirs`); otherwise ValueError naming the reason. Empty `allowed`: local paths
    are off."""
    if not allowed:
        raise ValueError("local paths are off on this server (the host enables them with EXPLORER_LOCAL_DIRS)")
    shown = path_text if len(path_text) <= 200 else path_text[:200] + "…"
    p = _resolve(path_text.strip(), allowed[0])
    if not _inside(p, allowed):
        raise ValueError(f"{shown!r} is outside the folders this server allows: {[str(d) for d in allowed]}")
    try:
        mode = p.stat().st_mode
    except OSError:
        raise ValueError(f"{shown!r} does not exist") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):  # a FIFO or device would block or never end
        raise ValueError(f"{shown!r} is not a regular file or folder")
    if stat.S_ISDIR(mode):
        _check_folder(p, allowed, shown)
    elif p.name.lower().endswith(".safetensors.index.json"):  # the loader then reads the index's folder
        _check_folder(p.parent, allowed, shown)
    return p
