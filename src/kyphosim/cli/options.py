"""Option parsing shared by several sub-commands (errors become one readable CLI line)."""

from __future__ import annotations

from kyphosim.errors import InputError
from kyphosim.imaging.labels import parse_levels, vertebra_name

__all__ = ["level_ids_option", "level_names_option"]


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
