"""Shared fixtures: the real data folder (tests skip cleanly without it) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

from kyphosim.datasets import shared_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$KYPHOSIM_DATA``); skips the test when it is absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("shared data not available (set KYPHOSIM_DATA or place ../shared/data)")
    return d


@pytest.fixture()
def cli():
    """Run the kyphosim CLI in-process: ``code, out, err = cli([...], capsys)``."""
    from kyphosim.cli.main import main

    def run(args, capsys):
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return run


@pytest.fixture(scope="module")
def one_numba_thread():
    """The test machine is shared: one numba thread avoids waiting on descheduled workers
    (module-wide; use with ``pytestmark = pytest.mark.usefixtures("one_numba_thread")``)."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


@pytest.fixture(scope="session")
def wedge_block():
    """The simulation tests' synthetic three-level block (L1 wedged 6 mm, 80 mg/cm³, 1 mm grid):
    (ct, labels, subregions, truth), built once per session; tests must not modify it."""
    from kyphosim.simulation.synthetic import make_block_spine

    return make_block_spine(wedge_mm=6.0, bmd_mg_cm3=80.0, spacing_mm=1.0)
