"""Vertebra labels from anatomy, with a confidence per level and an ambiguity flag.

Counting starts from a landmark:

* **Sacrum** (L5/S1 junction): the vertebra just above the sacrum is L5. Reliable unless the spine has
  a transitional lumbosacral segment (lumbarised S1 or sacralised L5, 4–8 % of people and more in some
  series), which moves every lumbar label by one.
* **Lowest rib-bearing vertebra**: T12. Less reliable: the 12th rib can be hypoplastic or absent, a
  lumbar rib can be present on L1, and 13 rib pairs occur (T13).
* **User anchor** (``--anchor L1=<z mm>`` or ``--first-label L1``): taken as given.

When both landmarks are found and disagree (the count between them is not 5 lumbar vertebrae), the
labels are flagged *transitional* and ambiguous. When no landmark is in the field of view the labels
are a guess, flagged ambiguous, with low confidence — never a confident label.

Confidence of a level n vertebrae away from its landmark: ``p = p_landmark · (1 − p_step)^n`` where
``p_step`` is the chance of missing or inventing a boundary per counted level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kyphosim.imaging.labels import vertebra_id, vertebra_name

__all__ = ["Landmarks", "LevelLabel", "assign_labels", "STANDARD_SEQUENCE", "P_STEP"]

#: standard craniocaudal sequence of VerSe ids C1…L5 (T13/L6 only from explicit anchors)
STANDARD_SEQUENCE: list[int] = list(range(1, 25))
#: per-level counting error (missed or spurious disc) of the splitter, estimated on the dev cases
P_STEP = 0.03
#: landmark reliabilities (probability the landmark names the right level)
P_SACRUM = 0.93        # transitional lumbosacral vertebrae in ≈ 7 % (clinical-reference / literature)
P_RIB = 0.85           # 12th rib variants (hypoplastic, lumbar rib, T13)
P_ANCHOR = 0.99
P_NONE = 0.2


@dataclass(frozen=True)
class Landmarks:
    """Landmarks found in the field of view (indices into the cranio-caudal list of vertebrae)."""

    sacrum_below: bool = False            # the sacrum lies just below the lowest vertebra
    sacrum_confidence: float = 0.0
    rib_bearing: tuple[bool, ...] = ()    # per vertebra (cranial → caudal): ribs articulate with it
    rib_confidence: float = 0.0


@dataclass
class LevelLabel:
    label: int
    name: str
    confidence: float
    flags: list[str] = field(default_factory=list)


def _name_from_start(start_id: int, n: int) -> list[int]:
    seq = STANDARD_SEQUENCE
    i0 = seq.index(start_id)
    out = []
    for j in range(n):
        k = i0 + j
        out.append(seq[k] if 0 <= k < len(seq) else (25 if k == len(seq) else 0))
    return out


def assign_labels(n: int, landmarks: Landmarks, *, z_mm: list[float] | None = None,
                  anchor: tuple[str, float] | None = None, first_label: str | None = None,
                  default_lowest: str = "L5") -> tuple[list[LevelLabel], bool, str]:
    """Labels of ``n`` vertebrae ordered cranial → caudal.

    Returns (labels, ambiguous, method). ``z_mm`` are the body-centre heights (world z, mm), needed
    for an ``anchor``.
    """
    if n == 0:
        return [], True, "none"
    flags_all: list[str] = []
    if anchor is not None or first_label is not None:
        if anchor is not None:
            name, z = anchor
            if z_mm is None:
                raise ValueError("anchor needs body heights")
            j = int(np.argmin(np.abs(np.asarray(z_mm) - z)))
            start = STANDARD_SEQUENCE.index(vertebra_id(name)) - j
        else:
            j = 0
            start = STANDARD_SEQUENCE.index(vertebra_id(first_label))
        ids = [STANDARD_SEQUENCE[start + i] if 0 <= start + i < len(STANDARD_SEQUENCE) else 0 for i in range(n)]
        conf = [P_ANCHOR * (1 - P_STEP) ** abs(i - j) for i in range(n)]
        return _pack(ids, conf, [[] for _ in range(n)]), False, "anchor" if anchor else "first_label"

    ribs = list(landmarks.rib_bearing) if landmarks.rib_bearing else [False] * n
    lowest_rib = max((i for i in range(n) if ribs[i]), default=None)
    sac_ids = rib_ids = None
    if landmarks.sacrum_below:
        # caudal-most vertebra is L5
        start = STANDARD_SEQUENCE.index(vertebra_id("L5")) - (n - 1)
        sac_ids = [STANDARD_SEQUENCE[start + i] if 0 <= start + i < 24 else 0 for i in range(n)]
    if lowest_rib is not None and landmarks.rib_confidence > 0:
        start = STANDARD_SEQUENCE.index(vertebra_id("T12")) - lowest_rib
        rib_ids = [STANDARD_SEQUENCE[start + i] if 0 <= start + i < 24 else 0 for i in range(n)]
        if lowest_rib == n - 1:
            # ribs on the caudal-most vertebra: it could be T12 or a higher one whose lower
            # neighbours are out of view only if the FOV ends there; still a valid T12 landmark
            pass

    ambiguous = False
    if sac_ids is not None and rib_ids is not None:
        if sac_ids == rib_ids:
            ids = sac_ids
            p0 = 1 - (1 - landmarks.sacrum_confidence * P_SACRUM) * (1 - landmarks.rib_confidence * P_RIB)
            conf = [p0 * (1 - P_STEP) ** min(n - 1 - i, abs(i - lowest_rib)) for i in range(n)]
            method = "sacrum+ribs"
        else:
            ids = sac_ids
            ambiguous = True
            flags_all.append("transitional_or_rib_variant")
            conf = [0.5 * (1 - P_STEP) ** (n - 1 - i) for i in range(n)]
            method = "sacrum (ribs disagree)"
    elif sac_ids is not None:
        ids = sac_ids
        p0 = landmarks.sacrum_confidence * P_SACRUM
        conf = [p0 * (1 - P_STEP) ** (n - 1 - i) for i in range(n)]
        method = "sacrum"
        ambiguous = p0 < 0.6
    elif rib_ids is not None:
        ids = rib_ids
        p0 = landmarks.rib_confidence * P_RIB
        # the rib detector alone is not trusted with a confident label: long transverse processes
        # (e.g. the phantom's) can pass for a pair of 12th ribs; the name is a best estimate, flagged
        conf = [min(0.55, p0) * (1 - P_STEP) ** abs(i - lowest_rib) for i in range(n)]
        method = "ribs"
        ambiguous = True
        flags_all.append("rib_landmark_only")
    else:
        start = STANDARD_SEQUENCE.index(vertebra_id(default_lowest)) - (n - 1)
        while start < 0:
            start += 1
        ids = [STANDARD_SEQUENCE[start + i] if start + i < 24 else 0 for i in range(n)]
        conf = [P_NONE] * n
        ambiguous = True
        flags_all.append("no_landmark_in_view")
        method = "guess"
    flags = [list(flags_all) for _ in range(n)]
    for f, c in zip(flags, conf):
        if c < 0.6:
            f.append("low_confidence")
    return _pack(ids, conf, flags), ambiguous, method


def _pack(ids: list[int], conf: list[float], flags: list[list[str]]) -> list[LevelLabel]:
    out = []
    for i, c, f in zip(ids, conf, flags):
        if i == 0:
            out.append(LevelLabel(0, "?", 0.0, f + ["outside_standard_sequence"]))
        else:
            out.append(LevelLabel(int(i), vertebra_name(i), float(round(c, 3)), f))
    return out
