"""``assess_spine``: the whole assessment of one spine CT (or label map) as a typed result."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

from kyphosim.assess import density as dens
from kyphosim.assess.genant import grade_spine
from kyphosim.assess.geometry import BodyGeometry, prepare_subregions, vertebral_body_geometry
from kyphosim.assess.kyphosis import local_kyphosis_deg, regional_kyphosis_deg, regional_levels, sagittal_axes
from kyphosim.assess.model import DensityCalibration, LevelAssessment, SpineAssessment, SpineSummary
from kyphosim.assess.morphometry import measure_morphometry
from kyphosim.assess.posterior_wall import posterior_wall_bulge_mm
from kyphosim.errors import GridMismatchError, InputError, KyphosimError, LabelError
from kyphosim.imaging.labels import VERTEBRA_NAMES, craniocaudal_order, vertebra_name
from kyphosim.imaging.volume import Volume

__all__ = ["assess_spine", "assess_spine_detailed", "missing_levels"]

_STANDARD = list(range(1, 25))  # C1..L5


def missing_levels(ids: list[int]) -> list[int]:
    """Standard levels absent between the cranial-most and caudal-most present ones (T13/L6 ignored)."""
    std = [i for i in ids if i in _STANDARD]
    if len(std) < 2:
        return []
    lo, hi = min(std), max(std)
    return [i for i in range(lo, hi + 1) if i not in std]


def _round(x, nd=2):
    if x is None:
        return None
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return None
    return round(xf, nd) if np.isfinite(xf) else None


#: without a sub-endplate band, an endplate mass this many times the spine's median marks dense/thick
#: endplates (≈ 2.5 SD of the level-to-level scatter of normal phantom levels)
DENSE_ENDPLATE_RATIO = 1.3
#: largest endplate thickness, as a multiple of the typical plate, given to a level with dense endplates
DENSE_ENDPLATE_MAX_RATIO = 2.5


#: trabecular bone under an endplate denser than the body's central trabecular bone by at least this
#: (HU) is a sub-endplate band (sclerosis of a healing/chronic fracture, compaction of an acute one)
SUBENDPLATE_BAND_MIN_HU = 50.0


def _subendplate_bands(geos: dict[int, BodyGeometry]) -> None:
    """Mark (``BodyGeometry.subendplate_band``) the levels whose bone under an endplate is markedly
    denser than their central trabecular bone (or, for a collapsed body without a band-free centre,
    than the spine's median central trabecular bone). Not a user flag: on real CT normal vertebrae
    also have denser subchondral bone (docs/assessment.md), so it only gates the endplate-thickness
    correction of :func:`_dense_endplates`."""
    cents = [g.subendplate_hu[2] for g in geos.values() if g.subendplate_hu[2] is not None]
    spine_ref = float(np.median(cents)) if cents else None
    for g in geos.values():
        sup, inf, cen = g.subendplate_hu
        ref = cen if cen is not None else spine_ref
        if ref is None:
            continue
        g.subendplate_band = any(v is not None and v - ref >= SUBENDPLATE_BAND_MIN_HU for v in (sup, inf))


def _dense_endplates(geos: dict[int, BodyGeometry]) -> None:
    """Levels with markedly heavier endplates than the spine's typical endplate get a proportionally
    thicker plate in the CT edge model — at a fixed bone density the fitted plate mass scales with its
    thickness — which moves their outer surfaces out by half the extra thickness (flag
    ``dense_endplates``). "Markedly": a mass above :data:`DENSE_ENDPLATE_RATIO` × the spine's median
    (the session-1 rule: beyond the level-to-level scatter of normal endplates, 5–95 % range
    0.83–1.18), or above the median at all for a level with a sub-endplate band
    (:func:`_subendplate_bands`), whose remodelling is independent evidence of a thicker plate."""
    from kyphosim.assess.edges import PLATE_MM

    mass = {lid: g.plate_mass_hu_mm() for lid, g in geos.items()}
    # the reference is the spine's typical plate: levels cut by the field of view or fragmented are not
    # used for it (a sliver at the edge gave a mass of 4543 or None under 1e-14 mm affine round-off and
    # so flipped the flag of its neighbours, docs/robustness.md); nor do they get the correction (a
    # plate mass with a plate out of view or a fragment is not comparable to the spine's)
    unreliable = {lid for lid, g in geos.items() if {"cut_by_fov", "fragmented_mask"} & set(g.flags)}
    vals = [m for lid, m in mass.items() if m is not None and m > 0 and lid not in unreliable]
    if len(vals) < 3:
        return
    ref = float(np.median(vals))
    for lid, m in mass.items():
        if m is None or m <= ref or lid in unreliable:
            continue
        if not (geos[lid].subendplate_band or m > DENSE_ENDPLATE_RATIO * ref):
            continue
        geos[lid].endplate_thickness_mm = PLATE_MM * min(m / ref, DENSE_ENDPLATE_MAX_RATIO)
        geos[lid].flags.append("dense_endplates")


def _rank(lid: int) -> float:
    return 19.5 if lid == 28 else float(lid)


def _level_workers(n_levels: int) -> int:
    """Threads for the per-level work: the machine's cores (at most 4), never more than levels."""
    return max(1, min(4, os.cpu_count() or 1, n_levels))


def assess_spine(ct: Optional[Volume], labels: Volume, *, subregions: Optional[Volume] = None,
                 resample_labels: bool = False, levels: Optional[list[int]] = None,
                 osteoporosis_thresholds_hu: Optional[dict] = None,
                 progress: Optional[Callable[[str], None]] = None) -> SpineAssessment:
    """Assess every vertebra of ``labels`` (see :func:`assess_spine_detailed`); returns the typed result."""
    return assess_spine_detailed(ct, labels, subregions=subregions, resample_labels=resample_labels,
                                 levels=levels, osteoporosis_thresholds_hu=osteoporosis_thresholds_hu,
                                 progress=progress)[0]


def assess_spine_detailed(ct: Optional[Volume], labels: Volume, *, subregions: Optional[Volume] = None,
                          resample_labels: bool = False, levels: Optional[list[int]] = None,
                          osteoporosis_thresholds_hu: Optional[dict] = None,
                          progress: Optional[Callable[[str], None]] = None, use_ct_edges: bool = True,
                          middle_reference: str = "posterior",
                          ) -> tuple[SpineAssessment, dict[int, BodyGeometry], Volume]:
    """Assess every vertebra of ``labels``: morphometry, Genant grade/type, kyphosis, density, wall.

    Returns (result, {VerSe id: BodyGeometry}, the label map used (resampled when asked)).

    Parameters
    ----------
    ct : Volume or None
        CT in HU on the label grid (None: morphometry only, density fields null).
    labels : Volume
        Vertebra label map (VerSe ids).
    subregions : Volume, optional
        Sub-region map on the label grid (kyphosim ids or TPTBox 41–50).
    resample_labels : bool
        Resample labels (and sub-regions) onto the CT grid when the grids differ; otherwise a
        :class:`GridMismatchError` is raised.
    levels : list of VerSe ids, optional
        Restrict the per-level output to these levels (neighbours are still used as references).
    osteoporosis_thresholds_hu : dict, optional
        ``{"osteoporosis_max": 110, "osteopenia_max": 160}`` (Pickhardt 2013 by default).
    use_ct_edges : bool
        With a CT (default True), place the endplate surfaces of Ha/Hm/Hp and of the height profile
        within their voxel by the blurred thin-plate edge model (:mod:`kyphosim.assess.edges`);
        False: surfaces from the mask alone (±½ voxel).
    middle_reference : str
        Reference of a central depression in the Genant grade (:func:`kyphosim.assess.genant.grade_spine`);
        the default 'posterior' is the documented rule, the others are measured alternatives.
    """
    if not isinstance(labels, Volume):
        raise InputError("labels must be a kyphosim Volume (use kyphosim.imaging.load_labels)")
    if ct is not None and not labels.same_grid(ct) and labels.reorient(ct.axcodes).same_grid(ct):
        labels = labels.reorient(ct.axcodes)  # the CT's grid in another voxel order: reorder losslessly
    if ct is not None and not labels.same_grid(ct):
        if not resample_labels:
            raise GridMismatchError(
                f"labels ({labels.shape}, {''.join(labels.axcodes)}) are not on the CT grid ({ct.shape}, "
                f"{''.join(ct.axcodes)}); resample them (--resample-labels)")
        labels = labels.resample(like=ct)
        if subregions is not None:
            subregions = subregions.resample(like=ct)
    if subregions is not None and not subregions.same_grid(labels):
        if not resample_labels:
            raise GridMismatchError(
                f"sub-regions ({subregions.shape}) are not on the label grid ({labels.shape}); "
                f"resample them (--resample-labels)")
        subregions = Volume(subregions.data, subregions.affine, is_label=True).resample(like=labels)
    # one fixed voxel order (RAS) for every input orientation: the per-level kernels (crops, coarse
    # blocks, sample grids) start at the array's low corner, so without this a file written in another
    # voxel order of the same world gave heights differing by up to ~0.05 mm and HU by 1
    # (docs/robustness.md); all outputs are world coordinates, figures sample in world coordinates
    labels = labels.as_canonical()
    if ct is not None:
        ct = ct.as_canonical()
    if subregions is not None:
        subregions = subregions.as_canonical()
    data = labels.data
    if not np.issubdtype(data.dtype, np.integer):
        data = np.round(data).astype(np.int32)
    present = sorted({int(v) for v in np.unique(data) if v in VERTEBRA_NAMES})
    ids = craniocaudal_order(present)
    if not ids:
        raise LabelError("the label map holds no vertebra (VerSe ids 1–25, 28)")
    sub = prepare_subregions(subregions)
    objs = ndimage.find_objects(data.astype(np.int32, copy=False))
    cent = {}
    for lid in ids:  # centroids from the bounding boxes (fast)
        sl = objs[lid - 1]
        idx = np.argwhere(data[sl] == lid)
        cent[lid] = labels.voxel_to_world(idx.mean(axis=0) + np.array([q.start for q in sl]))
    miss = missing_levels(ids)

    # ------------------------------------------------------------------ geometry per level
    # Levels are independent until the cross-level steps (sub-endplate bands, grading): they run on
    # a small thread pool (the heavy NumPy/SciPy kernels release the GIL; each level has its own
    # BodyGeometry and caches). Results are collected in cranio-caudal order: deterministic.
    def neighbour_hint(i: int, lid: int):
        up = ids[i - 1] if i > 0 and abs(_rank(ids[i - 1]) - _rank(lid)) <= 2 else None
        dn = ids[i + 1] if i + 1 < len(ids) and abs(_rank(ids[i + 1]) - _rank(lid)) <= 2 else None
        if up is not None and dn is not None:
            return cent[up] - cent[dn]
        if up is not None:
            return cent[up] - cent[lid]
        if dn is not None:
            return cent[lid] - cent[dn]
        return None

    def one_level(i: int, lid: int):
        try:
            g = vertebral_body_geometry(labels, lid, _bbox=objs[lid - 1], si_hint=neighbour_hint(i, lid),
                                        _subregion_data=sub)
        except KyphosimError as exc:
            return lid, None, str(exc)
        except (ValueError, np.linalg.LinAlgError) as exc:  # degenerate geometry: flag, never crash
            return lid, None, f"{type(exc).__name__}: {exc}"
        if ct is not None and use_ct_edges:
            g.attach_ct(ct)
        return lid, g, None

    geos: dict[int, BodyGeometry] = {}
    errors: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=_level_workers(len(ids))) as pool:
        for lid, g, err in pool.map(lambda a: one_level(*a), list(enumerate(ids))):
            if progress:
                progress(vertebra_name(lid))
            if err is None:
                geos[lid] = g
            else:
                errors[lid] = err
        if ct is not None and use_ct_edges:
            _subendplate_bands(geos)
            _dense_endplates(geos)
        morph = dict(zip(geos, pool.map(measure_morphometry, geos.values())))

    # ------------------------------------------------------------------ grading
    reliable = {lid: ("cut_by_fov" not in geos[lid].flags and "fragmented_mask" not in geos[lid].flags)
                for lid in geos}
    grade_in = [(lid, morph[lid].heights if lid in morph else (None, None, None)) for lid in ids]
    pmins = {lid: (morph[lid].profile_min_mm, morph[lid].profile_min_fraction) for lid in morph}
    grades = grade_spine(grade_in, reliable=reliable, profile_min=pmins,
                         uncertainty_mm={lid: morph[lid].uncertainty_mm for lid in morph},
                         middle_reference=middle_reference)

    # ------------------------------------------------------------------ kyphosis
    ok_geos = [geos[lid] for lid in ids if lid in geos]
    axes = sagittal_axes(ok_geos) if ok_geos else None
    regional = regional_kyphosis_deg(ok_geos, axes) if axes is not None and len(ok_geos) >= 2 else None

    # ------------------------------------------------------------------ density
    thresholds = osteoporosis_thresholds_hu or dens.PICKHARDT_THRESHOLDS_HU
    hu: dict[int, float | None] = {}
    dens_flags: dict[int, list[str]] = {}
    calib = None
    spine_flags: list[str] = []
    if ct is not None:
        for lid, g in geos.items():
            try:
                val, _, fl = dens.trabecular_hu(ct, g)
            except (ValueError, IndexError) as exc:
                val, fl = None, [f"trabecular_roi_failed: {exc}"]
            hu[lid] = val
            dens_flags[lid] = fl
        if geos:
            centres_vox = np.array([labels.world_to_voxel(g.frame.origin_mm) for g in geos.values()])
            calib = dens.internal_calibration(ct, data > 0, centres_vox, axes[1])
            spine_flags.extend(calib.flags)
    else:
        spine_flags.append("no_ct_density_not_measured")

    # ------------------------------------------------------------------ per-level records
    out_levels: list[LevelAssessment] = []
    wanted = set(levels) if levels else None
    for i, lid in enumerate(ids):
        if wanted is not None and lid not in wanted:
            continue
        name = vertebra_name(lid)
        flags: list[str] = []
        if lid not in geos:
            out_levels.append(LevelAssessment(label=lid, name=name,
                                              flags=[f"measurement_failed: {errors.get(lid, 'unknown')}"]))
            continue
        g, m, gr = geos[lid], morph[lid], grades[lid]
        flags.extend(g.flags)
        flags.extend(f for f in m.flags if f not in flags)
        flags.extend(f for f in gr.flags if f not in flags)
        if g.voxel_si_mm > 2.0 and "coarse_slice_spacing" not in flags:
            flags.append("coarse_slice_spacing")
        # neighbours missing in the sequence
        if lid - 1 in miss:
            flags.append("level_missing_above")
        if lid + 1 in miss:
            flags.append("level_missing_below")
        # grade close to a threshold given the height resolution
        if gr.height_loss_pct is not None and gr.expected_height_mm:
            margin = 100.0 * 2 * m.uncertainty_mm / gr.expected_height_mm
            if any(abs(gr.height_loss_pct - t) < margin for t in (20.0, 25.0, 40.0)):
                flags.append("grade_near_threshold")
        up = geos.get(ids[i - 1]) if i > 0 and abs(_rank(ids[i - 1]) - _rank(lid)) <= 1 else None
        dn = geos.get(ids[i + 1]) if i + 1 < len(ids) and abs(_rank(ids[i + 1]) - _rank(lid)) <= 1 else None
        lk = local_kyphosis_deg(up, dn, axes) if axes is not None else None
        try:
            bulge = posterior_wall_bulge_mm(g)
        except (ValueError, IndexError):
            bulge = None
            flags.append("posterior_wall_not_measured")
        vb = None
        if ct is not None:
            flags.extend(dens_flags.get(lid, []))
            if calib is not None and np.isfinite(calib.slope):
                vb = calib.to_mg_cm3(hu.get(lid))
        out_levels.append(LevelAssessment(
            label=lid, name=name,
            height_anterior_mm=_round(m.anterior_mm), height_middle_mm=_round(m.middle_mm),
            height_posterior_mm=_round(m.posterior_mm),
            ratio_anterior_posterior=_round(m.ratio_anterior, 3), ratio_middle_posterior=_round(m.ratio_middle, 3),
            expected_height_mm=_round(gr.expected_height_mm),
            expected_posterior_height_mm=_round(None if gr.deficit_posterior is None or m.posterior_mm is None
                                                else m.posterior_mm / (1 - gr.deficit_posterior)),
            height_loss_pct=_round(gr.height_loss_pct, 1), genant_grade=gr.grade, genant_type=gr.type,
            wedge_angle_deg=None if "cut_by_fov" in g.flags else _round(m.wedge_angle_deg),
            local_kyphosis_deg=_round(lk),
            trabecular_hu=_round(hu.get(lid), 1), vbmd_mg_cm3=_round(vb, 1),
            posterior_wall_bulge_mm=_round(bulge), body_depth_mm=_round(g.depth_mm),
            body_width_mm=_round(g.width_mm), centroid_mm=[_round(v) for v in g.frame.origin_mm],
            si_axis=[_round(v, 4) for v in g.frame.si], ap_axis=[_round(v, 4) for v in g.frame.ap],
            lr_axis=[_round(v, 4) for v in g.frame.lr], voxel_size_si_mm=_round(g.voxel_si_mm, 3),
            height_uncertainty_mm=_round(m.uncertainty_mm, 3), body_source=g.source,
            reference_levels=gr.reference_levels, flags=flags,
        ))

    # ------------------------------------------------------------------ spine summary
    by_name = {lv.name: lv for lv in out_levels}
    sdi_names = [vertebra_name(i) for i in range(11, 24)]  # T4..L4
    sdi_grades = [by_name[n].genant_grade for n in sdi_names if n in by_name]
    sdi_known = [gr for gr in sdi_grades if gr is not None]
    sdi = int(sum(sdi_known)) if len(sdi_known) == len(sdi_names) else None
    sdi_partial = int(sum(sdi_known)) if sdi_known else None
    l1_hu, l1_name = None, None
    if ct is not None:
        cands = [lv for lv in out_levels if lv.trabecular_hu is not None and lv.genant_grade == 0
                 and lv.name in {"T11", "T12", "L1", "L2", "L3", "L4"}]
        if cands:
            best = min(cands, key=lambda lv: (abs(_rank(lv.label) - 20), _rank(lv.label)))
            l1_hu, l1_name = best.trabecular_hu, best.name
            if best.name != "L1":
                spine_flags.append(f"l1_unavailable_used_{best.name}")
        else:
            spine_flags.append("no_normal_level_for_opportunistic_hu")
    vb_vals = [lv.vbmd_mg_cm3 for lv in out_levels if lv.vbmd_mg_cm3 is not None and lv.genant_grade == 0
               and lv.name.startswith("L")][:2]
    vb_mean = float(np.mean(vb_vals)) if vb_vals else None
    if miss:
        spine_flags.append("levels_missing")
    cal_model = None
    if calib is not None and np.isfinite(calib.slope):
        cal_model = DensityCalibration(effective_energy_kev=dens._E_KEV, tissues_hu=calib.tissues_hu,
                                       tissues_used=calib.used, slope=calib.slope,
                                       intercept_hu=calib.intercept_hu, r2=calib.r2,
                                       mg_cm3_per_hu=calib.mg_cm3_per_hu)
    spine = SpineSummary(
        sdi=sdi, sdi_partial=sdi_partial, l1_trabecular_hu=l1_hu, l1_level=l1_name,
        osteoporosis=dens.osteoporosis_category(l1_hu, thresholds) if l1_hu is not None else None,
        osteoporosis_thresholds_hu=dict(thresholds), vbmd_mean_mg_cm3=_round(vb_mean, 1),
        vbmd_category=dens.vbmd_category(vb_mean), density_calibration=cal_model,
        regional_kyphosis_deg=_round(regional),
        regional_levels=regional_levels(ok_geos) if regional is not None else None,
        fractured_levels=[lv.name for lv in out_levels if (lv.genant_grade or 0) >= 1],
        missing_levels=[vertebra_name(i) for i in miss], flags=spine_flags,
    )
    inputs = {"ct": (ct.meta.get("path") if ct is not None else None), "labels": labels.meta.get("path"),
              "subregions": (subregions.meta.get("path") if subregions is not None else None),
              "label_grid_shape": list(labels.shape), "spacing_mm": [_round(s, 4) for s in labels.spacing],
              "orientation": "".join(labels.axcodes)}
    return SpineAssessment(inputs=inputs, levels=out_levels, spine=spine), geos, labels
