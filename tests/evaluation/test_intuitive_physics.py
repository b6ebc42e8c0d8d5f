"""Benchmark readers (IntPhys dev quadruplets, GRASP P_/IP_ folders, InfLevel CSV pairs) on
tiny fixtures written here in the official layouts (numpy + PIL + PyAV only)."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_jepa.evaluation.intuitive_physics import (
    breaking_points,
    inflevel_starts,
    iter_intphys,
    load_voe_pairs,
    match_quadruplet,
    read_video_frames,
)
from keras_jepa.data.physics_videos import make_quadruplet, make_voe_dataset, write_voe_dataset


def _write_intphys_scene(folder, clips, labels):
    """``folder/<k>/scene/NNN.png`` for k = 1..4, ``status.json`` for some clips only."""
    for k, (clip, possible) in enumerate(zip(clips, labels), start=1):
        os.makedirs(os.path.join(folder, str(k), "scene"), exist_ok=True)
        for t, frame in enumerate(clip):
            Image.fromarray(frame).save(os.path.join(folder, str(k), "scene", f"{t:03d}.png"))
        if not possible or k == 1:  # a missing status.json means possible
            with open(os.path.join(folder, str(k), "status.json"), "w") as f:
                json.dump({"header": {"is_possible": bool(possible)}}, f)


@pytest.fixture(scope="module")
def intphys_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("intphys")
    quads = {}
    for block, prop in (("O1", "object_permanence"), ("O2", "shape_constancy")):
        for i in range(2):
            q = make_quadruplet(prop, seed=i, image_size=16, num_frames=10, dtype="uint8")
            # Shuffle the clip order as in the real dev set: A, AB, BA, B -> folders 1..4.
            order = [0, 2, 3, 1] if i == 0 else [3, 0, 1, 2]
            clips = q["videos"][order]
            labels = [bool(q["labels"][k]) for k in order]
            _write_intphys_scene(str(root / block / f"scene_{i}"), clips, labels)
            quads[(block, i)] = q
    return str(root), quads


def test_breaking_points_and_matches():
    q = np.zeros((4, 6, 2, 2, 3))
    q[1, 4:] = 1.0   # clip 2 identical longest
    q[2, 1:] = 1.0
    q[3, 2:] = -1.0
    assert breaking_points(q) == [4, 1, 2]
    assert match_quadruplet([4, 1, 2]) == [(0, 1), (2, 3)]
    assert match_quadruplet([1, 5, 2]) == [(0, 2), (1, 3)]
    assert match_quadruplet([1, 2, 6]) == [(0, 3), (1, 2)]
    # Signed differences that cancel still count as a difference here.
    r = np.zeros((4, 3, 1, 2, 1))
    r[1, 1, 0, :, 0] = [1.0, -1.0]
    r[2:, 0] = 5.0
    assert breaking_points(r)[0] == 1


def test_intphys_pairs_match_by_first_differing_frame(intphys_root):
    root, quads = intphys_root
    pairs = load_voe_pairs(root, "intphys")
    assert len(pairs["possible"]) == 8
    assert pairs["property"] == ["O1"] * 4 + ["O2"] * 4
    for k, name in enumerate(pairs["name"]):
        block, scene, _ = name.split("/")
        q = quads[(block, int(scene.split("_")[1]))]
        found = False
        for pos, imp in q["pairs"]:
            if (np.array_equal(pairs["possible"][k], q["videos"][pos])
                    and np.array_equal(pairs["impossible"][k], q["videos"][imp])):
                found = True
        assert found, name
    # One block folder directly; frame step and size.
    one = list(iter_intphys(os.path.join(root, "O1"), frame_step=2, image_size=8))
    assert len(one) == 4 and one[0]["property"] == "O1"
    assert one[0]["possible"].shape == (5, 8, 8, 3)


def test_intphys_errors(tmp_path):
    with pytest.raises(ValueError, match="No IntPhys scene"):
        load_voe_pairs(str(tmp_path), "intphys")
    q = make_quadruplet("inertia", seed=0, image_size=8, num_frames=6, dtype="uint8")
    _write_intphys_scene(str(tmp_path / "s"), q["videos"], [True, True, True, True])
    with pytest.raises(ValueError, match="both possible"):
        load_voe_pairs(str(tmp_path), "intphys")
    with pytest.raises(ValueError, match="'vimeo'"):
        load_voe_pairs(str(tmp_path), "vimeo")


def test_grasp_pairs_mp4_and_npy(tmp_path):
    d = make_voe_dataset(["gravity", "solidity"], 1, image_size=32, num_frames=12,
                         dtype="uint8")
    write_voe_dataset(d, str(tmp_path / "npy"), format="npy")
    pairs = load_voe_pairs(str(tmp_path / "npy"), "grasp", frame_step=3)
    assert pairs["property"] == ["gravity", "gravity", "solidity", "solidity"]
    np.testing.assert_array_equal(pairs["possible"][2], d["possible"][2][::3])
    np.testing.assert_array_equal(pairs["impossible"][1], d["impossible"][1][::3])
    os.remove(str(tmp_path / "npy" / "IP_gravity" / "pair_00000.npy"))
    with pytest.raises(ValueError, match="no impossible match"):
        load_voe_pairs(str(tmp_path / "npy"), "grasp")
    pytest.importorskip("av")  # the mp4 half needs PyAV
    write_voe_dataset(d, str(tmp_path / "mp4"), format="mp4")
    mp4 = load_voe_pairs(str(tmp_path / "mp4"), "grasp", image_size=16)
    assert mp4["possible"][0].shape == (12, 16, 16, 3)


def _indexed_video(length):
    """Frame t is filled with the value t, so offsets can be read back."""
    return np.broadcast_to(np.arange(length, dtype="uint8")[:, None, None, None],
                           (length, 4, 4, 3)).copy()


def test_inflevel_pairs_follow_the_priming_alignment(tmp_path):
    os.makedirs(tmp_path / "continuity")
    np.save(tmp_path / "continuity" / "a__vv__LR.npy", _indexed_video(40))
    np.save(tmp_path / "continuity" / "a__vi__LR.npy", _indexed_video(37))
    cols = ["path", "start_priming_1", "end_priming_1", "start_priming_2", "end_priming_2",
            "label"]
    header = [f"vid{k}_{c}" for k in (1, 2) for c in cols]
    with open(tmp_path / "continuity.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        # vid1 impossible, vid2 possible, to check the label order.
        w.writerow(["continuity/a__vi__LR.npy", 2, 4, 8, 10, "impossible",
                    "continuity/a__vv__LR.npy", 2, 4, 9, 11, "possible"])
    pairs = load_voe_pairs(str(tmp_path), "inflevel")
    # Remaining after end_priming_2: vid1 (37 frames) 27, vid2 (40 frames) 29 -> vid2
    # skips 2 more: vid1 starts at 11, vid2 at 14; both have 26 frames.
    imp, pos = pairs["impossible"][0][:, 0, 0, 0], pairs["possible"][0][:, 0, 0, 0]
    assert imp[0] == 11 and pos[0] == 14 and len(imp) == len(pos) == 26
    assert pairs["property"] == ["continuity"]
    primed = load_voe_pairs(str(tmp_path), "inflevel", priming=True, frame_step=5)
    assert primed["impossible"][0][:, 0, 0, 0].tolist() == [0, 5, 10, 15, 20, 25, 30, 35]
    assert primed["possible"][0][:, 0, 0, 0].tolist() == [3, 8, 13, 18, 23, 28, 33, 38]
    assert inflevel_starts(50, 50, {"vid1_end_priming_2": 5, "vid2_end_priming_2": 5}) == (
        6, 6)


def test_read_video_frames_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        read_video_frames(str(tmp_path / "missing.mp4"))


def test_physics_demo_writes_tables_surprises_and_weights(tmp_path):
    """The main demo end to end at a toy size: its tables (per property and per
    condition), raw surprises and trained weights; the weights reload into the model."""
    from keras_jepa.programs.demo import build_demo_model, run_demo

    # One 6-frame window per video (12 frames taken every 2nd), as in the default demo,
    # so the surprise plot is drawn over the context lengths.
    config = dict(image_size=16, patch_size=8, video_frames=12, frame_step=2,
                  frames_per_clip=6, hidden_dim=16, depth=1, num_heads=2, predictor_dim=16,
                  predictor_depth=1, predictor_heads=2, num_train_videos=4, batch_size=2,
                  context_lengths=(2, 4))
    out = run_demo(steps=10, output_dir=str(tmp_path),
                   properties=("object_permanence", "solidity"), scenes_per_property=1,
                   verbose=0, **config)
    assert set(out["tables"]) == {"trained", "untrained", "pixel_copy", "pixel_predictor"}
    assert out["tables"]["trained"]["all"]["num_pairs"] == 4
    conditions = out["condition_tables"]["trained"]
    assert sum(row["num_pairs"] for row in conditions.values()) == 4
    assert all(k.startswith(("object_permanence (", "solidity (")) for k in conditions)
    saved = np.load(tmp_path / "surprise.npz")
    assert saved["trained_possible"].shape == saved["trained_impossible"].shape == (4, 2, 1)
    assert saved["property"].tolist()[:2] == ["object_permanence"] * 2
    model = build_demo_model(config, steps=10)
    model.load_weights(str(tmp_path / "vjepa.weights.h5"))
    assert os.path.exists(tmp_path / "surprise_pair.png")
