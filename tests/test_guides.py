"""Runs the guides end to end with tiny settings (``KERAS_JEPA_GUIDE_QUICK=1``)."""

import os
import runpy

import pytest

from tests.test_case import REPO_ROOT

GUIDES = os.path.join(REPO_ROOT, "guides")

# guide file -> a line its quick run must print
EXPECTED = {
    "ijepa_pretraining.py": "linear probe: pretrained",
    "using_official_checkpoints.py": "max |converted - original|: 0.0",
    "distributed_training.py": "torchrun --standalone --nproc_per_node=2",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_guide_runs(name, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_JEPA_GUIDE_QUICK", "1")
    runpy.run_path(os.path.join(GUIDES, name), run_name="__main__")
    out = capsys.readouterr().out
    assert EXPECTED[name] in out
