"""Leak detection and classification (Yeom et al. 2003; type D intradiscal added later).

Leaks are detected where cement reaches an exit of the body (see ``cement.py``):

* **B** — basivertebral foramen/vein (posterior wall midline);
* **S** — segmental-vein / nutrient foramina on the anterolateral cortex;
* **C** — cortical defect (the fracture line through the wall);
* **D** — intradiscal (a broken endplate, or a cleft opening to the disc);
* **canal** — cement in the spinal canal (epidural venous plexus, reached through the
  basivertebral foramen or a posterior-wall defect) — the dangerous one.

Each leak has its volume (mL) and the cement-weighted centroid (world RAS mm).
"""

from __future__ import annotations

__all__ = ["summarise_leaks", "LEAK_TYPES"]

LEAK_TYPES = ("B", "S", "C", "D", "canal")


def summarise_leaks(leaks: list[dict], min_volume_ml: float = 1e-3) -> dict:
    """Counts and volumes per type; ``any`` true when a leak ≥ ``min_volume_ml`` exists (CT-visible)."""
    real = [lk for lk in leaks if lk["volume_ml"] >= min_volume_ml]
    return {"any": bool(real), "types": sorted({lk["type"] for lk in real}),
            "total_volume_ml": float(sum(lk["volume_ml"] for lk in real)),
            "canal": any(lk["type"] == "canal" for lk in real)}
