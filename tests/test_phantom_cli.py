"""``kyphosim phantom`` CLI: outputs and clear errors (exit 2)."""

from __future__ import annotations

import json

import pytest


def test_cli_writes_outputs(cli, capsys, tmp_path):
    out = tmp_path / "ph"
    code, stdout, err = cli(["phantom", "--levels", "L1-L2", "--fracture", "L1:crush:1:chronic:cleft",
                             "--fracture", "L2:wedge:3", "--bmd", "90", "--spacing", "2,2,2.5",
                             "--orientation", "RAS", "--seed", "2", "--no-soft-tissue", "--margin", "3",
                             "--size-sd", "0.04", "--out", out], capsys)
    assert code == 0, err
    for f in ("ct.nii.gz", "labels.nii.gz", "subregions.nii.gz", "truth.json"):
        assert (out / f).is_file()
    t = json.loads((out / "truth.json").read_text())
    assert [lv["genant_grade"] for lv in t["levels"]] == [1, 3]
    assert t["levels"][0]["fracture"]["cleft"] is True and t["levels"][0]["fracture"]["age"] == "chronic"
    assert t["spec"]["orientation"] == "RAS" and t["spec"]["spacing_mm"] == [2.0, 2.0, 2.5]
    assert t["spec"]["margin_mm"] == 3.0 and t["spec"]["size_sd"] == 0.04
    assert "L1" in stdout and "crush" in stdout
    code, stdout, _ = cli(["info", out / "ct.nii.gz", "--labels", out / "labels.nii.gz"], capsys)
    assert code == 0 and "L2" in stdout


@pytest.mark.parametrize("args, msg", [
    (["--levels", "T12-L9"], "unknown vertebra"),
    (["--fracture", "L1:wedge:4"], "grade"),
    (["--fracture", "L1:wedge"], "LEVEL:TYPE:GRADE"),
    (["--spacing", "1,0,1"], "spacing"),
    (["--spacing", "a,b,c"], "spacing"),
    (["--orientation", "XYZ"], "orientation"),
    (["--hu-gain", "5"], "hu_gain"),
    (["--fracture", "L1:wedge:2", "--fracture", "L1:crush:1"], "two fractures"),
    (["--fracture", "L1:wedge:2:retropulsion=9"], "retropulsion"),
])
def test_cli_bad_input_exit_2(cli, capsys, tmp_path, args, msg):
    code, _, err = cli(["phantom", "--out", tmp_path / "x", *args], capsys)
    assert code == 2
    assert err.startswith("kyphosim: error:") and msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
