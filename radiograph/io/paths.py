"""Identifiers that become file names, and output paths that must stay in their run folder.

Subject, patient and slide identifiers name output files (``features/radiology/<subject>.h5``,
``graphs/pathology/<subject>.pt``). :func:`safe_name` says why an identifier is not a safe file
name on the common file systems (POSIX, NTFS, APFS); :func:`inside` checks that a path built
from an identifier stays inside the run folder.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Longest identifier accepted (characters); file systems allow 255 bytes per name, and an
#: identifier gets a suffix (``.h5``, ``.pt``) and may hold multi-byte characters.
MAX_NAME_LENGTH = 128
#: Device names Windows reserves, with or without an extension, in any case.
WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)
#: Characters Windows forbids in a file name (besides the separators and control characters).
WINDOWS_FORBIDDEN = '<>:"|?*'


def safe_name(text: str) -> str | None:
    """Why ``text`` is not a safe file name, or None when it is.

    Refused: empty; longer than :data:`MAX_NAME_LENGTH` characters; a path separator (``/``,
    ``\\``); a leading dot (hidden files, ``.`` and ``..``); a control character (U+0000 to
    U+001F, U+007F); a character Windows forbids (``<>:"|?*``); a trailing space or dot (Windows
    drops them, so two identifiers would name one file); a name Windows reserves (CON, PRN,
    AUX, NUL, COM1-9, LPT1-9, in any case, with or without an extension).

    Returns:
        A short reason such as ``"contains a path separator '/'"``, or None.
    """
    if not text:
        return "is empty"
    if len(text) > MAX_NAME_LENGTH:
        return f"is {len(text)} characters long (at most {MAX_NAME_LENGTH})"
    for separator in ("/", "\\"):
        if separator in text:
            return f"contains a path separator {separator!r}"
    if text.startswith("."):
        return "starts with a dot (hidden file, '.' or '..')"
    control = [c for c in text if ord(c) < 32 or ord(c) == 127]
    if control:
        return f"contains a control character (U+{ord(control[0]):04X})"
    forbidden = [c for c in text if c in WINDOWS_FORBIDDEN]
    if forbidden:
        return f"contains {forbidden[0]!r}, which Windows does not allow in file names"
    if text[-1] in " .":
        return "ends with a space or a dot (Windows drops them)"
    device = text.split(".")[0].rstrip(" ").upper()
    if device in WINDOWS_RESERVED:
        return f"is a device name Windows reserves ({device})"
    return None


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` as a Path, after checking that it resolves to a place inside ``root``.

    Both are resolved (symbolic links followed, ``..`` removed; neither needs to exist), so
    ``root/../x`` and a link pointing out of ``root`` are refused. ``root`` itself counts as
    inside.

    Raises:
        ValueError: naming both paths when ``path`` leaves ``root``.
    """
    resolved_root = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ValueError(
            f"output path {path} resolves to {resolved}, outside the run folder "
            f"{root} ({resolved_root})"
        )
    return Path(path)
