"""Option parsing shared by several sub-commands (errors become one readable CLI line)."""

from __future__ import annotations

import os
from pathlib import Path

from kyphosim.errors import InputError
from kyphosim.imaging.labels import parse_levels, vertebra_name

__all__ = ["level_ids_option", "level_names_option", "ensure_output_dir"]


def ensure_output_dir(path, option: str = "--out") -> Path:
    """Create the output folder now, before any slow work, so an unusable path (a file in the way, no
    permission) fails in a second with one line naming the option instead of after the computation."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option} {p}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputError(f"{option} {p}: the output folder is not writable")
    return p


def level_ids_option(spec: str, option: str = "--levels") -> list[int]:
    """VerSe ids of a level list such as ``"L1,L2"`` or ``"T12-L2"``; a bad list is an
    :class:`InputError` naming the option."""
    try:
        return parse_levels(spec)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def level_names_option(spec: str | None, option: str = "--levels") -> list[str] | None:
    """Vertebra names (``["T12", "L1"]``) of an optional level list; None when not given."""
    if not spec:
        return None
    return [vertebra_name(i) for i in level_ids_option(spec, option)]
