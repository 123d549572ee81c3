"""Backends: the classical pipeline, or TotalSegmentator when installed *with its weights already on disk*."""

from __future__ import annotations

from kyphosim.errors import InputError

__all__ = ["resolve_backend", "totalsegmentator_available", "run_totalsegmentator"]


def totalsegmentator_available() -> bool:
    return False


def resolve_backend(backend: str) -> str:
    b = (backend or "auto").lower()
    if b not in ("auto", "classic", "totalsegmentator"):
        raise InputError(f"unknown backend {backend!r} (auto, classic, totalsegmentator)")
    if b == "auto":
        return "totalsegmentator" if totalsegmentator_available() else "classic"
    if b == "totalsegmentator" and not totalsegmentator_available():
        raise InputError("TotalSegmentator is not installed with its weights; use --backend classic")
    return b


def run_totalsegmentator(ct):
    raise InputError("TotalSegmentator backend not available")
