"""Where the shared real data lives: ``$KYPHOSIM_DATA`` or ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_dir"]


def shared_data_dir() -> Path | None:
    """The shared data folder, or None when it is not available.

    Order: the ``KYPHOSIM_DATA`` environment variable; ``../shared/data`` relative to the current
    directory or to any parent of this source tree (a checkout next to ``shared/``).
    """
    env = os.environ.get("KYPHOSIM_DATA")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    candidates = [Path.cwd()] + list(Path(__file__).resolve().parents)
    for base in candidates:
        p = base.parent / "shared" / "data"
        if p.is_dir():
            return p
    return None
