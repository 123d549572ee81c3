"""Phantom ribs keep a joint space off their vertebra (issue #8) and the rib-contact counter itself."""

from __future__ import annotations

import numpy as np

from kyphosim.anatomy.phantom import PhantomSpec, make_phantom
from kyphosim.anatomy.phantom.contacts import rib_contacts, rib_mask
from kyphosim.anatomy.phantom.geometry import RIB_CLEARANCE_MM


def test_rib_contacts_counts_faces_and_shared_voxels():
    ribs = np.zeros((4, 4, 4), np.uint8)
    lab = np.zeros((4, 4, 4), np.uint8)
    ribs[0, 0, 0:2] = 18
    lab[1, 0, 0] = 18        # one face beside a rib voxel
    lab[0, 0, 1] = 18        # a shared voxel (also a face with ribs[0,0,0])
    assert rib_contacts(ribs, lab) == {(18, 18): 3}
    assert rib_contacts(ribs, np.zeros_like(lab)) == {}


def test_phantom_ribs_keep_a_joint_space_off_the_vertebra():
    """Thoracolumbar torso phantom at 1 mm: no rib voxel touches or overlaps a vertebra voxel (before
    the joint space the T11/T12 ribs met the pedicles at ~630 faces), the ribs are drawn, and their
    CT is bone."""
    assert RIB_CLEARANCE_MM >= 1.0
    ph = make_phantom(PhantomSpec(levels="T11-T12", fractures=[], spacing_mm=1.0, margin_mm=5.0, seed=7))
    ribs = rib_mask(ph)
    assert (ribs == 18).sum() > 1000 and (ribs == 19).sum() > 1000
    assert rib_contacts(ribs, ph.labels.data) == {}
    assert np.median(ph.ct.data[ribs > 0]) > 300.0
