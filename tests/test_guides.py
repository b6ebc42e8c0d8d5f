"""Runs the guides end to end with tiny settings (``KERAS_JEPA_GUIDE_QUICK=1``).

A guide is the same script on every backend, so each runs in one of the three per-backend
pytest processes (round-robin over the sorted names, ``assigned_backend``): together the
processes run every guide once, and each backend runs some. Set
``KERAS_JEPA_GUIDES_EVERYWHERE=1`` to run every guide on this process's backend.
"""

import os
import runpy

import keras
import pytest

from tests.test_case import REPO_ROOT, assigned_backend

GUIDES = os.path.join(REPO_ROOT, "guides")

# guide file -> a line its quick run must print
EXPECTED = {
    "ijepa_pretraining.py": "linear probe: pretrained",
    "using_official_checkpoints.py": "max |converted - original|: 0.0",
    "distributed_training.py": "torchrun --standalone --nproc_per_node=2",
    "lejepa.py": "linear probe, LeJEPA vs I-JEPA",
    "vjepa2_1_dense_features.py": "V-JEPA 2.1 dense-feature guide done",
    "vjepa2_ac.py": "vjepa2_ac guide: 4 controllers on 3 episodes",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_guide_runs(name, monkeypatch, capsys):
    home = assigned_backend(name, EXPECTED)
    if keras.backend.backend() != home and not os.environ.get("KERAS_JEPA_GUIDES_EVERYWHERE"):
        pytest.skip(f"runs in the {home} process (KERAS_JEPA_GUIDES_EVERYWHERE=1: here too)")
    monkeypatch.setenv("KERAS_JEPA_GUIDE_QUICK", "1")
    runpy.run_path(os.path.join(GUIDES, name), run_name="__main__")
    out = capsys.readouterr().out
    assert EXPECTED[name] in out
