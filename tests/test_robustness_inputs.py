"""Bad-input sweep through the CLI: every command that reads files gets broken inputs and must answer with
exit code 2 and ONE readable line on stderr (no traceback, no internal error). See docs/robustness.md."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

# -------------------------------------------------------------------------------- inputs


def _nifti(path: Path, data, affine=None, *, pixdim=None) -> Path:
    """Write a NIfTI; ``pixdim`` patches the stored spacing afterwards (qform only, no sform), byte for
    byte, because nibabel repairs zero/NaN spacing on writing."""
    import gzip
    import struct

    data = np.asarray(data)
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else np.asarray(affine, float))
    if pixdim is None:
        img.to_filename(str(path))
        return path
    img.header.set_sform(None, code=0)
    img.header.set_qform(np.diag([*[1.0 if not np.isfinite(v) or v <= 0 else float(v) for v in pixdim], 1.0]),
                         code=1)
    raw = bytearray(img.to_bytes())
    raw[80:92] = struct.pack("<3f", *[float(v) for v in pixdim])  # pixdim[1:4] (header offset 76 + 4)
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def make_bad_inputs(tmp: Path) -> tuple[dict, dict]:
    """A small valid case (the 2 mm synthetic block: T12/L1/L2, L1 wedged) and broken inputs.

    Returns (good, bad): good = {'ct', 'labels', 'clinical', 'assessment'} paths; bad = {name: (role, path)}
    with role 'ct' (an image argument), 'labels' or 'level' (a level name, not a path).
    """
    from kyphosim.fileio import write_json
    from kyphosim.imaging.io import save_volume
    from kyphosim.simulation.synthetic import make_block_spine

    tmp.mkdir(parents=True, exist_ok=True)
    ct, lab, _sub, _truth = make_block_spine(wedge_mm=6.0, bmd_mg_cm3=80.0, spacing_mm=2.0)
    good = {"ct": save_volume(ct, tmp / "ct.nii.gz"), "labels": save_volume(lab, tmp / "labels.nii.gz")}
    good["clinical"] = Path(__file__).resolve().parents[1] / "src/kyphosim/clinical/examples/demo_clinical.yaml"
    aff = ct.affine
    ctd = np.asarray(ct.data, np.float32)
    labd = np.asarray(lab.data, np.uint8)
    bad: dict[str, tuple[str, Path]] = {}

    def add(name, role, path):
        bad[name] = (role, path)

    for role, base in (("ct", ctd), ("labels", labd)):
        add(f"{role}:missing", role, tmp / f"{role}_missing.nii.gz")
        d = tmp / f"{role}_dir"
        d.mkdir(exist_ok=True)
        add(f"{role}:directory", role, d)
        txt = tmp / f"{role}_text.nii.gz"
        txt.write_text("this is not an image\n")
        add(f"{role}:text_as_nifti", role, txt)
        add(f"{role}:2d", role, _nifti(tmp / f"{role}_2d.nii.gz", base[:, :, base.shape[2] // 2]))
        add(f"{role}:4d", role, _nifti(tmp / f"{role}_4d.nii.gz", np.stack([base, base], axis=-1), aff))
        add(f"{role}:zero_spacing", role, _nifti(tmp / f"{role}_sp0.nii.gz", base, aff, pixdim=[2.0, 0.0, 2.0]))
        add(f"{role}:nan_spacing", role, _nifti(tmp / f"{role}_spnan.nii.gz", base, aff,
                                                pixdim=[2.0, np.nan, 2.0]))
        a50 = aff.copy()
        a50[2, 2] = 50.0
        add(f"{role}:50mm_spacing", role, _nifti(tmp / f"{role}_sp50.nii.gz", base, a50))
        a_sing = aff.copy()
        a_sing[:3, 2] = a_sing[:3, 0]  # two array axes along the same world direction
        add(f"{role}:singular_affine", role, _nifti(tmp / f"{role}_singular.nii.gz", base, a_sing))
    add("ct:all_zero", "ct", _nifti(tmp / "ct_zero.nii.gz", np.zeros_like(ctd), aff))
    add("ct:raw_0_4095", "ct", _nifti(tmp / "ct_raw.nii.gz", np.clip(ctd + 1024, 0, 4095).astype(np.int16), aff))
    add("labels:float_nonint", "labels", _nifti(tmp / "lab_float.nii.gz", labd.astype(np.float32) * 0.37, aff))
    add("labels:no_vertebrae", "labels", _nifti(tmp / "lab_none.nii.gz", np.where(labd > 0, 26, 0).astype(np.uint8), aff))
    sub_ids = np.where(labd > 0, 41 + (labd % 10), 0).astype(np.uint8)  # a seg-subreg mask given as labels
    add("labels:subregion_mask", "labels", _nifti(tmp / "lab_subreg.nii.gz", sub_ids, aff))
    other = aff.copy()
    other[:3, 3] += 7.0
    add("labels:other_grid", "labels", _nifti(tmp / "lab_other.nii.gz", labd[:, :, :-3], other))
    add("level:absent", "level", Path("L5"))
    blocker = tmp / "a_file"
    blocker.write_text("x")
    add("out:not_writable", "out", blocker / "sub")
    good["assessment"] = write_json(tmp / "assessment.json", {"schema": "kyphosim.assessment/1", "levels": []})
    return good, bad


#: command → (argument template, roles it takes); {ct} {labels} {out} {level} are substituted
COMMANDS: dict[str, list[str]] = {
    "info": ["info", "{ct}", "--labels", "{labels}"],
    "assess": ["assess", "{ct}", "--labels", "{labels}", "--out", "{out}", "--no-figures"],
    "segment": ["segment", "{ct}", "--out", "{out}/labels.nii.gz"],
    "plan": ["plan", "{ct}", "--labels", "{labels}", "--levels", "{level}", "--out", "{out}", "--no-images"],
    "fluoro": ["fluoro", "{ct}", "--level", "{level}", "--labels", "{labels}", "--out", "{out}/ap.png",
               "--size", "64"],
    "simulate": ["simulate", "{ct}", "--labels", "{labels}", "--level", "{level}", "--out", "{out}"],
    "compare": ["compare", "{ct}", "--labels", "{labels}", "--level", "{level}", "--out", "{out}"],
    "strength": ["strength", "{ct}", "--labels", "{labels}", "--level", "{level}", "--out", "{out}"],
    "run": ["run", "{ct}", "--labels", "{labels}", "--out", "{out}", "--levels", "{level}", "--quiet",
            "--no-simulation", "--no-strength"],
    "decide": ["decide", "--clinical", "{clinical}", "--assessment", "{labels}", "--out", "{out}"],
}


def command_lines(good: dict, bad: dict, tmp: Path):
    """(command, case, argv) for every command × broken input it can take."""
    for cmd, tmpl in COMMANDS.items():
        takes = {r for r in ("ct", "labels", "level", "out") if any("{" + r + "}" in t for t in tmpl)}
        if cmd == "decide":
            takes = {"labels", "out"}  # --assessment is given in the labels slot
        for case, (role, path) in bad.items():
            if role not in takes:
                continue
            if cmd == "decide" and case.startswith("labels:") and case not in (
                    "labels:missing", "labels:directory", "labels:text_as_nifti"):
                continue
            sub = {"ct": good["ct"], "labels": good["labels"], "level": "L1", "clinical": good["clinical"],
                   "out": tmp / f"out_{cmd}_{case.replace(':', '_')}"}
            if cmd == "decide":
                sub["labels"] = good["assessment"]
            sub[role] = path
            yield cmd, case, [t.format(**{k: str(v) for k, v in sub.items()}) for t in tmpl]


# -------------------------------------------------------------------------------- tests
#: broken inputs that are the right answer to accept: (command, case) → why
ACCEPTED = {
    ("fluoro", "labels:other_grid"): "fluoro only centres the view on the level's world centroid",
}
_SWEEP: dict = {}


def _sweep(tmp_path_factory):
    if not _SWEEP:
        tmp = tmp_path_factory.mktemp("bad_inputs")
        good, bad = make_bad_inputs(tmp)
        _SWEEP.update(tmp=tmp, good=good, bad=bad, lines=list(command_lines(good, bad, tmp)))
    return _SWEEP


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_bad_inputs_give_one_line_and_exit_2(cmd, cli, capsys, tmp_path_factory):
    """Each broken input → exit code 2 and exactly one stderr line 'kyphosim: error: ...' naming the problem."""
    sw = _sweep(tmp_path_factory)
    failures = []
    n = 0
    for c, case, argv in sw["lines"]:
        if c != cmd or (c, case) in ACCEPTED:
            continue
        n += 1
        code, out, err = cli(argv, capsys)
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        if code != 2 or len(lines) != 1 or not lines[0].startswith("kyphosim: error: ") or "Traceback" in err:
            failures.append(f"{case}: code {code}, stderr {err.strip()[:200]!r}")
    assert n > 0
    assert not failures, f"{cmd}: " + " | ".join(failures)


def test_failed_runs_leave_earlier_results_intact(cli, capsys, tmp_path_factory, monkeypatch):
    """A bad input, an unusable --out and a crash half-way through writing: assessment.json from the
    earlier run stays complete (atomic writes) and no temporary file is left behind."""
    sw = _sweep(tmp_path_factory)
    good, bad = sw["good"], sw["bad"]
    out = sw["tmp"] / "atomic_out"
    code, _, err = cli(["assess", good["ct"], "--labels", good["labels"], "--out", out, "--no-figures"], capsys)
    assert code == 0, err
    first = (out / "assessment.json").read_bytes()
    code, _, err = cli(["assess", bad["ct:raw_0_4095"][1], "--labels", good["labels"], "--out", out], capsys)
    assert code == 2 and (out / "assessment.json").read_bytes() == first

    import kyphosim.assess.figures as figs

    def broken(*a, **k):
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(figs, "level_figure", broken)
    code, _, err = cli(["assess", good["ct"], "--labels", good["labels"], "--out", out], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "internal error" in err
    assert json.loads((out / "assessment.json").read_text())["schema"] == "kyphosim.assessment/1"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_output_folder_is_checked_before_the_work(cli, capsys, tmp_path_factory):
    """--out under a regular file fails at once with one line (simulate took 40 s to fail before)."""
    sw = _sweep(tmp_path_factory)
    good, bad = sw["good"], sw["bad"]
    code, _, err = cli(["simulate", good["ct"], "--labels", good["labels"], "--level", "L1",
                        "--out", bad["out:not_writable"][1]], capsys)
    assert code == 2 and "--out" in err and "cannot create the output folder" in err


def test_subregion_mask_given_as_labels(shared_data, cli, capsys):
    """The TPTBox/VerSe seg-subreg mask (41–50) passed as --labels was read as ten vertebrae C1–T3."""
    d = shared_data / "tptbox_l3"
    code, _, err = cli(["info", d / "sub-ct_label-22_ct.nii.gz", "--labels",
                        d / "sub-ct_seg-subreg_label-22_msk.nii.gz"], capsys)
    assert code == 2 and "sub-region ids" in err and "--subregions" in err
