"""Run pipeline stages with a record of what happened: ok, skipped (with the reason) or failed.

A stage that fails with a user-fixable error (:class:`~kyphosim.errors.KyphosimError`) or an internal
error does not stop the run: it is recorded with its reason, later stages that need its result are
skipped with "needs <stage>", and the report states it.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from kyphosim.errors import KyphosimError

__all__ = ["StageRecord", "StageRunner"]


@dataclass
class StageRecord:
    status: str  # "ok" | "skipped" | "failed"
    seconds: float = 0.0
    reason: str = ""
    detail: str = ""


@dataclass
class StageRunner:
    """Runs named stages in order and keeps their records.

    ``on_start(name)`` / ``on_end(name, record)`` callbacks drive a progress display.
    """

    on_start: Callable[[str], None] | None = None
    on_end: Callable[[str, StageRecord], None] | None = None
    records: dict[str, StageRecord] = field(default_factory=dict)

    def skip(self, name: str, reason: str) -> None:
        rec = StageRecord("skipped", 0.0, reason)
        self.records[name] = rec
        if self.on_end:
            self.on_end(name, rec)

    def run(self, name: str, fn: Callable[[], Any], *, needs: tuple[str, ...] = ()) -> Any:
        """Run ``fn`` as stage ``name`` unless a stage it needs did not succeed; returns its result or None."""
        for dep in needs:
            rec = self.records.get(dep)
            if rec is None or rec.status != "ok":
                self.skip(name, f"needs the {dep} stage ({rec.status if rec else 'not run'})")
                return None
        if self.on_start:
            self.on_start(name)
        t0 = time.perf_counter()
        try:
            result = fn()
        except KyphosimError as exc:
            rec = StageRecord("failed", time.perf_counter() - t0, str(exc))
            result = None
        except Exception as exc:  # recorded, reported; the run goes on
            rec = StageRecord("failed", time.perf_counter() - t0, f"internal error: {type(exc).__name__}: {exc}",
                              traceback.format_exc(limit=6))
            result = None
        else:
            rec = StageRecord("ok", time.perf_counter() - t0)
        self.records[name] = rec
        if self.on_end:
            self.on_end(name, rec)
        return result

    def ok(self, name: str) -> bool:
        rec = self.records.get(name)
        return rec is not None and rec.status == "ok"

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {k: {"status": v.status, "seconds": round(v.seconds, 2), "reason": v.reason}
                for k, v in self.records.items()}
