"""Vertebra label ids and names.

kyphosim uses the VerSe ids internally: 1–7 C1–C7, 8–19 T1–T12, 20–25 L1–L6, 28 T13 (26 is the
sacrum, kept as a landmark but not a vertebra). Converters map TotalSegmentator names and its v1/v2
multilabel ids onto them.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = [
    "VERTEBRA_NAMES", "SACRUM_ID", "vertebra_name", "vertebra_id", "is_vertebra_id", "parse_levels",
    "craniocaudal_order", "TS_V1_IDS", "TS_V2_IDS", "ts_name_to_verse", "level_region",
    "SUBREGION_IDS", "SUBREGION_NAMES", "subregions_from_tptbox",
]

SACRUM_ID = 26

VERTEBRA_NAMES: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{7 + i: f"T{i}" for i in range(1, 13)},
    **{19 + i: f"L{i}" for i in range(1, 7)},
    28: "T13",
}
_NAME_TO_ID = {v: k for k, v in VERTEBRA_NAMES.items()}
_NAME_TO_ID["S1"] = SACRUM_ID

# craniocaudal rank: T13 sits between T12 and L1
_RANK = {i: float(i) for i in VERTEBRA_NAMES}
_RANK[28] = 19.5
_RANK[SACRUM_ID] = 26.0

# TotalSegmentator multilabel ids of the "total" task
TS_V1_IDS: dict[int, int] = {tid: _NAME_TO_ID[n] for tid, n in zip(range(18, 42), [f"L{i}" for i in range(5, 0, -1)]
                                                    + [f"T{i}" for i in range(12, 0, -1)]
                                                    + [f"C{i}" for i in range(7, 0, -1)])}
TS_V1_IDS[92] = SACRUM_ID
TS_V2_IDS: dict[int, int] = {tid: _NAME_TO_ID[n] for tid, n in zip(range(27, 51), [f"L{i}" for i in range(5, 0, -1)]
                                                                    + [f"T{i}" for i in range(12, 0, -1)]
                                                                    + [f"C{i}" for i in range(7, 0, -1)])}
TS_V2_IDS[25] = SACRUM_ID  # sacrum
TS_V2_IDS[26] = SACRUM_ID  # vertebrae_S1


def is_vertebra_id(label: int) -> bool:
    """True for a VerSe vertebra id (not the sacrum)."""
    return int(label) in VERTEBRA_NAMES


def vertebra_name(label: int) -> str:
    """VerSe id → name, e.g. 20 → 'L1'."""
    label = int(label)
    if label == SACRUM_ID:
        return "S1"
    try:
        return VERTEBRA_NAMES[label]
    except KeyError:
        raise ValueError(f"{label} is not a VerSe vertebra id (1–25, 28)") from None


def vertebra_id(name: str | int) -> int:
    """Name ('L1', 'l1', 'vertebrae_L1') or id → VerSe id."""
    if isinstance(name, (int, np.integer)):
        if int(name) in VERTEBRA_NAMES or int(name) == SACRUM_ID:
            return int(name)
        raise ValueError(f"{name} is not a VerSe vertebra id (1–25, 28)")
    s = str(name).strip()
    if s.isdigit():
        return vertebra_id(int(s))
    s = re.sub(r"^vertebrae?_", "", s, flags=re.I).upper()
    if s in _NAME_TO_ID:
        return _NAME_TO_ID[s]
    raise ValueError(f"unknown vertebra name {name!r} (expected e.g. T12, L1)")


def ts_name_to_verse(name: str) -> int | None:
    """TotalSegmentator structure name ('vertebrae_L1', 'sacrum') → VerSe id, or None if not a vertebra."""
    n = name.strip()
    if n.lower() == "sacrum":
        return SACRUM_ID
    m = re.fullmatch(r"vertebrae_([CTLS]\d+)", n, flags=re.I)
    if not m:
        return None
    try:
        return vertebra_id(m.group(1))
    except ValueError:
        return None


def craniocaudal_order(labels) -> list[int]:
    """Sort VerSe ids from cranial to caudal (T13 between T12 and L1)."""
    return sorted((int(x) for x in labels), key=lambda v: _RANK.get(v, 100.0 + v))


def level_region(label: int) -> str:
    """'cervical', 'thoracic', 'lumbar' or 'sacral'."""
    label = int(label)
    if 1 <= label <= 7:
        return "cervical"
    if 8 <= label <= 19 or label == 28:
        return "thoracic"
    if 20 <= label <= 25:
        return "lumbar"
    return "sacral"


def parse_levels(spec: str) -> list[int]:
    """'T10-L3' or 'L1,T12' or 'L1' → VerSe ids, cranial to caudal.

    Ranges follow the standard sequence C1…C7, T1…T12, L1…L5 (T13/L6 only when named).
    """
    out: list[int] = []
    standard = [i for i in range(1, 25)]
    for part in [p for p in re.split(r"[,\s]+", spec.strip()) if p]:
        if "-" in part:
            a, b = (vertebra_id(x) for x in part.split("-", 1))
            seq = standard + [25]
            if a not in seq or b not in seq:
                raise ValueError(f"range {part!r} must use standard levels C1–L6")
            ia, ib = seq.index(a), seq.index(b)
            if ia > ib:
                ia, ib = ib, ia
            out.extend(seq[ia:ib + 1])
        else:
            out.append(vertebra_id(part))
    if not out:
        raise ValueError(f"no levels in {spec!r}")
    return craniocaudal_order(dict.fromkeys(out))


# ------------------------------------------------------------------------------- sub-regions
#: kyphosim sub-region ids (one map per spine; the vertebra a voxel belongs to comes from the
#: vertebra label map). Written by the phantom and the segmenter, read by assessment/planning/simulation.
SUBREGION_IDS: dict[str, int] = {
    "vertebral_body": 1,          # body incl. cortical shell and endplates
    "pedicle_left": 2,
    "pedicle_right": 3,
    "posterior_elements": 4,      # laminae, spinous/transverse processes, facets
    "spinal_canal": 5,
    "basivertebral_foramen": 6,   # foramen and basivertebral vein in the posterior body wall
    "intervertebral_disc": 7,
}
SUBREGION_NAMES: dict[int, str] = {v: k for k, v in SUBREGION_IDS.items()}

#: TPTBox / VerSe sub-region ids → kyphosim ids (pedicles are part of TPTBox's arch, 41)
TPTBOX_SUBREGIONS: dict[int, int] = {
    41: SUBREGION_IDS["posterior_elements"], 42: SUBREGION_IDS["posterior_elements"],
    43: SUBREGION_IDS["posterior_elements"], 44: SUBREGION_IDS["posterior_elements"],
    45: SUBREGION_IDS["posterior_elements"], 46: SUBREGION_IDS["posterior_elements"],
    47: SUBREGION_IDS["posterior_elements"], 48: SUBREGION_IDS["posterior_elements"],
    49: SUBREGION_IDS["vertebral_body"], 50: SUBREGION_IDS["vertebral_body"],
}


def subregions_from_tptbox(data: np.ndarray) -> np.ndarray:
    """Map a TPTBox/VerSe sub-region array (41–50) to kyphosim sub-region ids."""
    lut = np.zeros(max(256, int(data.max()) + 1), dtype=np.uint8)
    for k, v in TPTBOX_SUBREGIONS.items():
        lut[k] = v
    return lut[data.astype(np.int64)]
