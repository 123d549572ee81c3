"""Phantom: adjacent vertebrae never touch bone-to-bone (issue #8) and the contact counter itself."""

from __future__ import annotations

import numpy as np
import pytest

from kyphosim.anatomy.phantom import PhantomSpec, make_phantom
from kyphosim.anatomy.phantom.chain import build_shapes
from kyphosim.anatomy.phantom.contacts import contact_parts, label_contacts
from kyphosim.anatomy.phantom.geometry import FACET_CLEARANCE_MM


def test_label_contacts_counts_shared_faces():
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[0:2, 0:2, 0] = 20        # 2×2 block of L1
    lab[0:2, 0:2, 1] = 21        # directly above it: 4 shared faces along z
    lab[3, 3, 3] = 22            # isolated voxel: no contact
    lab[2, 0, 0] = 22            # beside one L1 voxel along x: 1 face
    sub = np.where(lab > 0, 4, 0).astype(np.uint8)
    sub[0, 0, 0] = 1
    assert label_contacts(lab) == {(20, 21): 4, (20, 22): 1}
    parts = contact_parts(lab, sub)
    assert sum(parts.values()) == 5
    assert parts[(20, 1, 21, 4)] == 1 and parts[(20, 4, 21, 4)] == 3
    assert label_contacts(np.zeros((3, 3, 3), np.uint8)) == {}


def _bone_only(levels: str, spacing: float) -> PhantomSpec:
    return PhantomSpec(levels=levels, fractures=[], spacing_mm=spacing, margin_mm=3.0, soft_tissue=False,
                       noise_hu=0.0, blur_fwhm_mm=0.0, seed=7)


def test_no_bone_contact_between_vertebrae_1mm():
    """Thoracic, thoracolumbar and lumbar joints at 1 mm: a non-bone voxel always separates two
    vertebrae (the articular processes keep FACET_CLEARANCE_MM off the other vertebra)."""
    assert FACET_CLEARANCE_MM >= 1.0
    ph = make_phantom(_bone_only("T10-L3", 1.0))
    assert label_contacts(ph.labels.data) == {}


def test_clearance_trims_the_articular_processes_only_slightly():
    """The clip is a trim of the tips/edges that reached the other vertebra: ≥ 80 % of each process's
    volume is kept (Monte Carlo in the vertebra's bounding box), and some of it is removed."""
    shapes, _ = build_shapes(PhantomSpec(levels="T12-L2", fractures=[], seed=7))
    rng = np.random.default_rng(0)
    s = shapes[1]
    lo, hi = s.local_bounds()
    p = rng.uniform(lo, hi, size=(150_000, 3))
    raw = np.minimum(s.joint_up.sdf(p, -1, "sap"), s.joint_up.sdf(p, 1, "sap")) <= 0
    R, t = s.down_tf
    q = p @ R.T + t
    raw |= np.minimum(s.joint_down.sdf(q, -1, "iap"), s.joint_down.sdf(q, 1, "iap")) <= 0
    kept = raw & (s.facet_sdf(p) <= 0)
    frac = kept.sum() / raw.sum()
    assert 0.8 <= frac < 0.995


@pytest.mark.slow
def test_no_bone_contact_between_vertebrae_half_mm():
    ph = make_phantom(_bone_only("L4-L5", 0.5))
    assert label_contacts(ph.labels.data) == {}


def test_facets_with_a_fracture_and_fixed_frame():
    """A fractured level (tilted frames) and an anisotropic grid keep the separation too."""
    spec = PhantomSpec(levels="T12-L2", fractures=["L1:wedge:3"], spacing_mm=(0.8, 0.8, 1.0), margin_mm=3.0,
                       soft_tissue=False, noise_hu=0.0, blur_fwhm_mm=0.0, orientation="PIR", seed=3)
    ph = make_phantom(spec)
    assert label_contacts(ph.labels.as_canonical().data) == {}
