"""Maps of a strength analysis: strain energy density and von Mises strain (NIfTI + PNG figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kyphosim.fileio import atomic_path
from kyphosim.imaging.io import save_volume
from kyphosim.mechanics.strength import StrengthResult

__all__ = ["write_maps", "plot_maps"]


def write_maps(result: StrengthResult, out_dir: str | Path, *, prefix: str = "") -> dict[str, Path]:
    """Write ``{prefix}sed_mpa.nii.gz`` (strain energy density, MPa = mJ/mm³),
    ``{prefix}von_mises_strain.nii.gz`` (mm/mm), ``{prefix}modulus_mpa.nii.gz``, ``{prefix}material.nii.gz``,
    ``{prefix}damage.nii.gz`` (1 − E_secant/E after the pushover, when it ran on the linear grid)
    on the analysis grid (input orientation restored) and ``{prefix}strength_maps.png``."""
    f = result.fields
    if f is None:
        raise ValueError("the result holds no fields (compute_strength(..., keep_fields=True))")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "sed": save_volume(f.element_volume(f.strain_energy_density_mpa), out / f"{prefix}sed_mpa.nii.gz"),
        "von_mises_strain": save_volume(f.element_volume(f.von_mises_strain), out / f"{prefix}von_mises_strain.nii.gz"),
        "modulus": save_volume(f.element_volume(f.mesh.modulus_mpa), out / f"{prefix}modulus_mpa.nii.gz"),
    }
    if f.secant_fraction is not None:  # pushover on the linear mesh: damage 1 − E_secant/E at the end
        paths["damage"] = save_volume(f.element_volume(1.0 - f.secant_fraction), out / f"{prefix}damage.nii.gz")
    mat = f.mesh.element_grid(f.mesh.material, dtype=np.uint8)
    from kyphosim.imaging.volume import Volume

    paths["material"] = save_volume(Volume(mat, f.grid.affine, is_label=True, source_axcodes=f.grid.source_axcodes),
                                    out / f"{prefix}material.nii.gz")
    paths["figure"] = plot_maps(result, out / f"{prefix}strength_maps.png")
    return paths


def plot_maps(result: StrengthResult, path: str | Path) -> Path:
    """Mid-sagittal and mid-coronal sections of von Mises strain and strain energy density (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = result.fields
    eq = f.mesh.element_grid(f.von_mises_strain * 100.0, fill=np.nan)
    sed = f.mesh.element_grid(f.strain_energy_density_mpa * 1000.0, fill=np.nan)  # kJ/m³ = mJ/cm³ … show ×1e3
    ci = int(np.median(f.mesh.elem_ijk[:, 0]))
    cj = int(np.median(f.mesh.elem_ijk[:, 1]))
    sp = f.mesh.spacing
    fig, axes = plt.subplots(2, 2, figsize=(9, 8), constrained_layout=True)
    vmax_eq = float(np.nanpercentile(eq, 99)) if np.isfinite(eq).any() else 1.0
    vmax_sed = float(np.nanpercentile(sed, 99)) if np.isfinite(sed).any() else 1.0
    panels = [(eq[ci, :, :], sp[1], "sagittal", "j (anterior) →", "von Mises strain (%)", vmax_eq, "magma"),
              (eq[:, cj, :], sp[0], "coronal", "i (right) →", "von Mises strain (%)", vmax_eq, "magma"),
              (sed[ci, :, :], sp[1], "sagittal", "j (anterior) →", "strain energy density (kJ/m³)", vmax_sed, "viridis"),
              (sed[:, cj, :], sp[0], "coronal", "i (right) →", "strain energy density (kJ/m³)", vmax_sed, "viridis")]
    for ax, (sl, hsp, title, xlabel, label, vmax, cmap) in zip(axes.ravel(), panels):
        im = ax.imshow(sl.T, origin="lower", cmap=cmap, vmin=0, vmax=vmax, aspect=sp[2] / hsp)
        ax.set_title(f"{title} section (voxels)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("k (superior) →")
        fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    fig.suptitle(f"{result.state}: stiffness {result.stiffness_n_per_mm / 1000:.2f} kN/mm, "
                 f"failure load ≈ {result.failure_load_n / 1000:.2f} kN ({result.material_law['name']})")
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return p
