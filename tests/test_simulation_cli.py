"""CLI of the simulation: ``kyphosim simulate`` and ``kyphosim compare`` on a synthetic block."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from kyphosim.imaging.io import save_volume
from kyphosim.simulation.synthetic import make_block_spine


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("simblock")
    ct, lab, sub, truth = make_block_spine(wedge_mm=6.0, spacing_mm=1.0)
    save_volume(ct, d / "ct.nii.gz")
    save_volume(lab, d / "labels.nii.gz")
    peds = truth["levels"][20]["pedicles"]
    plan = {"schema": "kyphosim.plan/1", "levels": [{"level": "L1", "trajectories": [
        {"side": s, "entry_mm": peds[s]["entry_mm"], "target_mm": peds[s]["target_mm"], "gauge": 8}
        for s in ("left", "right")]}]}
    (d / "plan.json").write_text(json.dumps(plan))
    return d


def test_simulate_cli(cli, capsys, files, tmp_path):
    out = tmp_path / "sim"
    code, stdout, err = cli(["simulate", files / "ct.nii.gz", "--labels", files / "labels.nii.gz", "--level", "L1",
                             "--plan", files / "plan.json", "--resolution", "1.0", "--injection-start", "7.5",
                             "--out", out], capsys)
    assert code == 0, err
    d = json.loads((out / "simulation.json").read_text())
    assert d["schema"] == "kyphosim.simulation/1"
    assert d["cement"]["injection_start_min"] == pytest.approx(7.5)
    for name in ("cavity.nii.gz", "cement.nii.gz", "pressure_volume.png", "heights.png",
                 "step1_access.png", "step2_inflation.png", "step3_deflation.png", "step4_cement.png",
                 "step5_set.png", "fluoro_ap_lateral.png"):
        assert (out / name).exists(), name
    ct = nib.load(str(files / "ct.nii.gz"))
    cem = nib.load(str(out / "cement.nii.gz"))
    assert cem.shape == ct.shape and np.allclose(cem.affine, ct.affine)
    assert "L1 kyphoplasty" in stdout


def test_compare_cli(cli, capsys, files, tmp_path):
    out = tmp_path / "cmp"
    code, stdout, err = cli(["compare", files / "ct.nii.gz", "--labels", files / "labels.nii.gz", "--level", "L1",
                             "--plan", files / "plan.json", "--resolution", "1.0", "--no-figures", "--out", out],
                            capsys)
    assert code == 0, err
    d = json.loads((out / "comparison.json").read_text())
    assert d["kyphoplasty"]["technique"] == "kyphoplasty" and d["vertebroplasty"]["technique"] == "vertebroplasty"
    assert (out / "kp_simulation.json").exists() and (out / "vp_cement.nii.gz").exists()


def test_cli_errors(cli, capsys, files, tmp_path):
    code, _, err = cli(["simulate", files / "ct.nii.gz", "--labels", files / "labels.nii.gz", "--level", "L9",
                        "--out", tmp_path], capsys)
    assert code == 2 and "error" in err
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    code, _, err = cli(["simulate", files / "ct.nii.gz", "--labels", files / "labels.nii.gz", "--level", "L1",
                        "--plan", bad, "--out", tmp_path], capsys)
    assert code == 2 and "JSON" in err
    code, _, err = cli(["simulate", files / "ct.nii.gz", "--labels", files / "labels.nii.gz", "--level", "L4",
                        "--out", tmp_path], capsys)
    assert code == 2
    code, _, err = cli(["compare", files / "ct.nii.gz", "--labels", files / "labels.nii.gz", "--level", "L1",
                        "--injection-start", "30", "--out", tmp_path / "late"], capsys)
    assert code == 2 and "--injection-start" in err and not (tmp_path / "late").exists()
