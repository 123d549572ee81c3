"""SINS components and categories (Fisher 2010; clinical-reference.md §6)."""

import pytest

from kyphosim.clinical.sins import score_sins, sins_location_points


@pytest.mark.parametrize("level,pts", [("C1", 3), ("C2", 3), ("C4", 2), ("C7", 3), ("T1", 3), ("T2", 3), ("T3", 1),
                                       ("T10", 1), ("T11", 3), ("L1", 3), ("L3", 2), ("L5", 3), ("S1", 3), ("S3", 0)])
def test_location_points(level, pts):
    assert sins_location_points(level)[0] == pts


def test_minimum_and_maximum_totals():
    low = score_sins("S3", pain="pain_free", lesion="blastic", alignment="normal", posterolateral="none",
                     height_loss_pct=0.0)
    assert low.total == 0 and low.category == "stable" and not low.surgical_consultation
    high = score_sins("L1", pain="mechanical", lesion="lytic", alignment="subluxation_translation",
                      posterolateral="bilateral", height_loss_pct=60.0)
    assert high.total == 18 and high.category == "unstable"


@pytest.mark.parametrize("loss,involved,pts", [(60, None, 3), (50, None, 2), (30, None, 2), (10, True, 1), (10, False, 0)])
def test_collapse_points(loss, involved, pts):
    assert score_sins("T6", height_loss_pct=loss, body_involvement_gt_50pct=involved).collapse == pts


def test_category_boundaries():
    # T6 semi-rigid 1 + occasional 1 + mixed 1 + normal 0 + collapse 2 + unilateral 1 = 6 → stable
    s = score_sins("T6", pain="occasional_non_mechanical", lesion="mixed", alignment="normal",
                   posterolateral="unilateral", height_loss_pct=30)
    assert s.total == 6 and s.category == "stable"
    s = score_sins("T6", pain="mechanical", lesion="mixed", alignment="normal", posterolateral="unilateral",
                   height_loss_pct=30)
    assert s.total == 8 and s.category == "potentially_unstable" and s.surgical_consultation
    s = score_sins("L3", pain="mechanical", lesion="lytic", alignment="de_novo_deformity", posterolateral="none",
                   height_loss_pct=55)  # 2+3+2+2+3+0 = 12
    assert s.total == 12 and s.category == "potentially_unstable"
    s = score_sins("L3", pain="mechanical", lesion="lytic", alignment="de_novo_deformity", posterolateral="unilateral",
                   height_loss_pct=55)
    assert s.total == 13 and s.category == "unstable"


def test_alignment_from_wedge_angle():
    assert score_sins("L2", wedge_angle_deg=20.0).alignment == 2
    assert score_sins("L2", wedge_angle_deg=5.0).alignment == 0
    assert "alignment not given" in score_sins("L2").notes[0]
