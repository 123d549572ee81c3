"""Every physical parameter of the procedure simulation, with its unit and its source.

Tags follow ``../shared/docs/clinical-reference.md``: **[C]** confirmed in a retrieved excerpt,
**[S]** secondary transcription, **[U]** unconfirmed (background knowledge / modelling choice; a
placeholder to be checked), **[D]** derived here from [C]/[S] numbers (the derivation is in
``docs/simulation.md``). Nothing in this file is tuned to a case.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["BalloonDevice", "BALLOONS", "CementGrade", "CEMENTS", "SimParams", "DEFAULT_PARAMS",
           "PSI_TO_KPA", "GAUGE_OD_MM", "crush_strength_mpa"]

PSI_TO_KPA = 6.894757
#: needle gauge → outside diameter, mm (Stubs gauge; clinical-reference §header) [C]
GAUGE_OD_MM = {8: 4.19, 10: 3.40, 11: 3.05, 13: 2.41}


@dataclass(frozen=True)
class BalloonDevice:
    """An inflatable bone tamp. Length [C] (Kyphon Xpander IFU sizes 10/15/20 mm); volume and
    pressure limits [U] (clinical-reference §3: IFU tables not retrieved)."""

    length_mm: float
    max_volume_ml: float           # [U] ≈ 3 / 4 / 6 mL
    max_pressure_kpa: float        # [U] Xpander 400 psi
    deflated_diameter_mm: float = 3.2   # [C] SYNFLATE pre-inflation profile 3.2 mm
    wall_compliance_kpa: float = 70.0   # [U] pressure to unfold/stretch the empty balloon at max volume (≈10 psi)


BALLOONS: dict[int, BalloonDevice] = {
    10: BalloonDevice(10.0, 3.0, 400 * PSI_TO_KPA),
    15: BalloonDevice(15.0, 4.0, 400 * PSI_TO_KPA),
    20: BalloonDevice(20.0, 6.0, 400 * PSI_TO_KPA),
}


@dataclass(frozen=True)
class CementGrade:
    """PMMA rheology for one viscosity grade: Herschel–Bulkley, τ = τ_y(t) + K(t)·γ̇ⁿ, where t is
    the time since the powder and monomer were mixed (the injection clock, docs/simulation.md §6).

    Both the consistency and the yield stress rise with polymerisation:

    * K(t) = K_ref · exp((t − t_ref)/τ_K), τ_K = 1.6 min **[D]**: the chord from a regular cement's
      100 Pa·s during its working time (Boger 2008 [C]; assumed at 6.5 min [U]) to the 75 × 10³ Pa·s
      that every cement reaches at cure (Nicholas 2007 [C]) at the 17 min setting time (Boger 2008 [C]):
      (17 − 6.5)/ln(750) = 1.59 min.
    * τ_y(t) = τ_y,ref · exp((t − t_ref)/τ_Y), τ_Y = 1.0 min **[D]** from two handling bounds on the
      low-viscosity cement: it was still injected by hand at 9.5 min (Habib 2010 protocol [C]), so
      τ_y(9.5) stays below the cannula plug limit Δp·d/(4L) ≈ 17 kPa (3 MPa thumb pressure [U],
      2.7 mm bore, 120 mm) → τ_Y > 6/ln(1700) = 0.81 min; and PMMA leaves its liquid phase within
      ≈ 5 min of mixing (5.1 ± 0.7 min at 22 °C, BMC Musculoskelet Disord 2012;13:198 [C]), so by
      Habib's 6.5 min it holds a bolus, τ_y ≥ 120 Pa → τ_Y < 3/ln(12) = 1.21 min. The geometric middle
      of 0.81–1.21 min is taken. τ_Y < τ_K: the Bingham number τ_y/(K·1 s⁻¹) grows with cure
      (the paste turns from a viscous liquid into an elastic solid, Nicholas 2007 [C qualitative]).

    Reference values at t_ref (= the grade's default injection start): consistency medium 100 Pa·sⁿ
    (Boger 2008 regular cement 100–125 Pa·s [C]); low = ½ of it (Ferracane 1981 [C] → [D]); high 400 [U].
    Yield stress [U, bounded by handling physics]: a low-viscosity cement is liquid when injected (it
    runs off a spatula: τ_y < ρ·g·H ≈ 60 Pa for a 5 mm layer); a high-viscosity cement is a dough that
    holds a 2 cm bolus (τ_y > ρ·g·H/2 ≈ 120 Pa). Start times: Habib's bench protocol [C] (low and high
    injected from 3.5 min after mixing; 6.5 min for the regular cement, the middle of his schedule).
    """

    name: str
    k_start_pa_sn: float          # consistency K at t_ref = t_start_min, Pa·s^n
    t_start_min: float            # reference time after mixing = default injection start, min [C Habib]
    tau_min: float = 1.6          # e-folding time of K(t), min [D] (Boger 2008 + Nicholas 2007)
    n: float = 0.7                # power-law index (shear-thinning) [U; qualitative [C] Ferracane, Trivedi]
    yield_stress_pa: float = 100.0  # τ_y at t_ref, Pa [U, handling bounds]
    tau_yield_min: float = 1.0    # e-folding time of τ_y(t), min [D] (handling bounds, see above)

    def k_at(self, t_min: float) -> float:
        """Consistency K (Pa·sⁿ) at ``t_min`` minutes after mixing."""
        return float(self.k_start_pa_sn * np.exp((t_min - self.t_start_min) / self.tau_min))

    def yield_stress_at(self, t_min: float) -> float:
        """Yield stress τ_y (Pa) at ``t_min`` minutes after mixing."""
        return float(self.yield_stress_pa * np.exp((t_min - self.t_start_min) / self.tau_yield_min))

    def bingham_number_at(self, t_min: float) -> float:
        """τ_y/(K·1 s⁻¹) at ``t_min`` minutes after mixing (rises with cure: τ_Y < τ_K)."""
        return self.yield_stress_at(t_min) / self.k_at(t_min)

    @property
    def bingham_number(self) -> float:
        """τ_y/(K·γ̇) at γ̇ = 1 s⁻¹ and t_ref: the share of the flow resistance that does not depend on the rate."""
        return self.yield_stress_pa / self.k_start_pa_sn


CEMENTS: dict[str, CementGrade] = {
    "low": CementGrade("low", 50.0, 3.5, yield_stress_pa=10.0),        # liquid: Bn 0.2 at 3.5 min
    "medium": CementGrade("medium", 100.0, 6.5, yield_stress_pa=60.0),  # regular: Bn 0.6 at 6.5 min
    "high": CementGrade("high", 400.0, 3.5, yield_stress_pa=400.0),     # dough: Bn 1.0 at 3.5 min
}


def crush_strength_mpa(rho_g_cm3, law: str = "kopperdahl_power"):
    """Crush (compressive yield) strength of trabecular bone, MPa, from QCT density ρ (g/cm³).

    ``kopperdahl_power``: σ_y = 37.4 ρ^1.39; ``kopperdahl_linear``: σ_y = −0.750 + 24.9 ρ (clipped
    at 0). Both are attributed to Kopperdahl et al. 2002 [S] (clinical-reference §5, ⚠ two forms).
    Works on scalars and arrays.
    """
    import numpy as np

    r = np.maximum(np.asarray(rho_g_cm3, dtype=float), 0.0)
    if law == "kopperdahl_power":
        return 37.4 * r ** 1.39
    if law == "kopperdahl_linear":
        return np.maximum(-0.750 + 24.9 * r, 0.0)
    raise ValueError(f"unknown strength law {law!r}")


@dataclass(frozen=True)
class SimParams:
    """All model parameters (units in names). See docs/simulation.md for each equation."""

    # --- density calibration (model.py) ---------------------------------------------------------
    hu_to_bmd_slope: float = 0.8          # mg/cm³ K2HPO4 per HU [U] phantomless approximation
    hu_to_bmd_intercept: float = 0.0      # mg/cm³ [U]
    tissue_bmd_mg_cm3: float = 1100.0     # QCT-equivalent density of fully mineralised tissue → BV/TV [U]
    cortical_shell_mm: float = 0.5        # vertebral cortical shell thickness [U] (0.2–0.5 mm)
    cleft_hu_max: float = -100.0          # body voxels below this are gas cleft [U]
    fluid_cleft_fraction: float = 0.35    # body voxels below this × trabecular HU (and < 40 HU) are fluid cleft [U]
    strength_law: str = "kopperdahl_power"  # [S] Kopperdahl 2002
    fracture_residual_strength: float = 0.89  # post-fracture failure load −11 % (Wegrzyn/Roux 2011) [C]
    sclerosis_ratio_chronic: float = 1.6  # fracture-band / trabecular density ratio above which healed [U]
    fragment_thickness_mm: float = 3.0    # endplate fragment above the fracture line [U]
    basivertebral_diameter_mm: float = 4.0  # basivertebral foramen [U] (3–6 mm)
    basivertebral_depth_frac: float = 0.35  # vein trunk length as a fraction of body depth [U]
    segmental_exit_diameter_mm: float = 1.5  # nutrient/segmental-vein foramina on the cortex [U]
    # --- access ---------------------------------------------------------------------------------
    kp_gauge: int = 8                     # [C for 3.3 mm Express; ≈8 G standard inferred] clinical-reference §3
    vp_gauge: int = 11                    # [C] VP trocars 11–13 G (Provenzano 2004)
    cannula_tip_inside_wall_mm: float = 3.0  # working cannula tip past the posterior wall [U]
    # --- balloon --------------------------------------------------------------------------------
    inflation_wall_fraction: float = 0.025  # syringe increment = this fraction of the wall candidates (numerical; converged: 1.25 % gives the same pressures within 2 %)
    inflation_rate_ml_min: float = 0.5    # slow incremental inflation [U]
    hold_at_pressure_limit: bool = True   # at the device limit keep taking wall voxels that yield below it;
                                          # stop when none is left (False: stop at the first step over the limit)
    continuum_mm: float = 1.0             # Gaussian scale of the apparent (continuum) density [U]
    crush_patch_mm: float = 3.0           # wall patch (FWHM) whose mean strength must be exceeded: 3 trabecular
                                          # spacings (Harrigan 1988 [C]: continuum needs 3–5 trabeculae; Tb.Sp ≈ 1 mm [U])
    compaction_ratio: float = 3.0         # compacted shell density / trabecular density [U]
    seal_fraction: float = 0.5            # exit sealed when compacted mass ≥ this × compaction limit [U]
    seal_reach_mm: float = 1.0            # exits within this distance of the inflated balloon collapse [U] (≈ compacted shell)
    snowplough_max_mm: float = 6.0        # farthest a compacted layer is pushed before it counts as solid
    contact_reach_mm: float = 2.0         # bone layer through which the balloon bears on the fragment [U]
    stop_on_cortex_contact_mm2: float = 40.0  # stop a balloon touching the anterior/lateral wall over this area [U]
    # --- lift -----------------------------------------------------------------------------------
    preload_n: float = 110.0              # physiological preload of the cadaver studies (sleeve study) [C]
    segment_extension_stiffness_nm_deg: float = 1.5  # motion-segment extension stiffness [U] (1–2 N·m/°)
    deflation_loss_at_110n: float = 0.46  # [D] (56 %−30 %)/56 %: sleeve vs standard Kyphon under 110 N [C]
    # --- cement ---------------------------------------------------------------------------------
    permeability_si_m2: float = 4.45e-8   # Baroud 2004 SI permeability [C]
    permeability_ap_over_si: float = 0.78  # Baroud 2004 AP/SI (3.44/4.45) [C]
    reference_bvtv: float = 0.10          # BV/TV at which Baroud's value applies [U]
    marrow_viscosity_pa_s: float = 0.1    # bone marrow at 37 °C, 0.04–0.4 Pa·s [U]
    venous_pressure_kpa: float = 1.33     # intraosseous = IVC pressure (Arnoldi 1981 [C]); 10 mmHg prone [U]
    herschel_bulkley: bool = True         # yield stress acts along every cement path (μ_app = Kγ̇^(n−1) + τ_y/γ̇)
    injection_rate_ml_min: float = 2.0    # [U] clinical 1–4 mL/min; Baroud bench 4 cc/min [C]
    injection_start_min: float | None = None  # time after mixing when injection starts; None = the grade's t_start_min
    injection_step_ml: float = 0.1        # numerical
    leak_visible_ml: float = 0.05         # leak a surgeon sees on fluoroscopy → stop [U]
    posterior_stop_fraction: float = 0.25  # stop when cement reaches the posterior quarter [C issue/ practice]
    posterior_visible_ml: float = 0.05    # ... a visible amount there (lateral view), same as leak_visible_ml [U]
    kp_cement_over_cavity: float = 1.15   # KP fill ≈ balloon volume (FREE 2.4 cc/side ≈ IBT volume) [C]+margin [U]
    kp_min_fill_fraction: float = 0.162   # at least the fill that restores strength (Molloy 2005 16.2 %) [C]
    vp_fill_fraction: float = 0.20        # VP default fill (Molloy 16.2 % strength / 29.8 % stiffness) [C]
    cement_volume_min_ml: float = 2.0     # clinical 2–8 mL (Molloy range) [C]
    cement_volume_max_ml: float = 8.0
    leak_space_mm: float = 4.0            # thickness of the extravertebral space modelled beyond an exit [U]
    vein_permeability_m2: float = 1.25e-7  # 2 mm vein as Poiseuille tube, k = d²/32 [D]
    disc_permeability_m2: float = 5e-9    # fissured disc/endplate break [U]
    cavity_permeability_m2: float = 3e-6  # open void ≈ 10 mm channel, k = d²/32 [D]
    setting_time_min: float = 17.0        # Boger 2008 regular cement [C]
    extra: dict[str, Any] = field(default_factory=dict)

    def with_(self, **kw: Any) -> "SimParams":
        return replace(self, **kw)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PARAMS = SimParams()
