"""Procedural violation-of-expectation videos: minimal-set invariants, physics of the possible
histories, determinism, the oracle scorer, writing (numpy only, every backend)."""

import numpy as np
import pytest

from keras_jepa.data.physics_videos import (
    FLOOR_Y,
    PALETTE,
    PROPERTIES,
    RADIUS,
    make_quadruplet,
    make_scene,
    make_training_videos,
    make_voe_dataset,
    physics_violations,
    render,
    write_video,
    write_voe_dataset,
)
from keras_jepa.evaluation.surprise import pairwise_accuracy


def _frame_multiset(videos):
    return sorted(f.tobytes() for v in videos for f in v)


@pytest.mark.parametrize("prop", PROPERTIES)
@pytest.mark.parametrize("occluded", [True, False])
def test_splices_share_prefix_and_frames(prop, occluded):
    for seed, n_obj in ((0, 1), (1, 3)):
        q = make_quadruplet(prop, seed=seed, image_size=24, num_frames=12, occluded=occluded,
                            num_objects=n_obj, textured=bool(seed))
        a, b, ab, ba = q["videos"]
        s = q["splice"]
        assert 0 < s < 12
        np.testing.assert_array_equal(ab[:s], a[:s])
        np.testing.assert_array_equal(ba[:s], b[:s])
        np.testing.assert_array_equal(ab[s:], b[s:])
        # Every frame occurs as often among the possible as among the impossible videos.
        assert _frame_multiset([a, b]) == _frame_multiset([ab, ba])
        # The two histories really differ after the splice (else the pair is trivial).
        assert np.abs(a[s:] - b[s:]).max() > 0.1
        assert q["labels"].tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("frames", [8, 16, 32])
def test_oracle_flags_exactly_the_impossible_videos(frames):
    for prop in PROPERTIES:
        for occluded in (True, False):
            for seed in range(3):
                q = make_quadruplet(prop, seed=seed, image_size=16, num_frames=frames,
                                    occluded=occluded, num_objects=1 + seed)
                v = physics_violations(q["states"], prop).sum(-1)
                assert v[0] == 0 and v[1] == 0, (prop, occluded, seed, v)
                assert v[2] > 0 and v[3] > 0, (prop, occluded, seed, v)


def test_oracle_scorer_gets_every_pair_right():
    d = make_voe_dataset(scenes_per_property=6, image_size=16, num_frames=12, seed=5)
    scores = {}
    for kind in ("possible", "impossible"):
        scores[kind] = np.array([physics_violations(s, p).sum()
                                 for s, p in zip(d[f"{kind}_states"], d["property"])])
    assert pairwise_accuracy(scores["possible"], scores["impossible"]) == 1.0
    assert len(d["possible"]) == 2 * 6 * len(PROPERTIES)
    assert sorted(set(d["property"].tolist())) == sorted(PROPERTIES)
    assert set(d["occluded"].tolist()) == {True, False}
    assert set(d["num_objects"].tolist()) == {1, 2, 3}


def _blobs(frame, background, min_pixels=3):
    from scipy import ndimage

    mask = np.abs(frame - background).sum(-1) > 0.3
    labels, n = ndimage.label(mask)
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return int(np.sum(np.asarray(sizes) >= min_pixels))


def test_visible_object_count_is_constant_only_in_possible_videos():
    q = make_quadruplet("object_permanence", seed=2, image_size=48, num_frames=16,
                        occluded=False, num_objects=1, moving=False)
    scene = make_scene("object_permanence", seed=2, image_size=48, num_frames=16,
                       occluded=False, num_objects=1, moving=False)
    bg = scene["background"]
    counts = [[_blobs(f, bg) for f in v] for v in q["videos"]]
    assert counts[0] == [1] * 16          # A: the object stays
    assert counts[1] == [0] * 16          # B: no object
    assert len(set(counts[2])) == 2 and len(set(counts[3])) == 2   # spliced: 1 -> 0, 0 -> 1


def test_free_fall_is_monotone_and_accelerating():
    for seed in range(4):
        scene = make_scene("gravity", seed=seed, image_size=64, num_frames=16, occluded=False)
        y = scene["histories"]["A"]["y"].astype("float64")
        flying = y < FLOOR_Y - RADIUS - 1e-6
        assert np.all(np.diff(y) >= 0)                       # the dropped object never rises
        acc = np.diff(y[flying], 2)
        np.testing.assert_allclose(acc, acc[0], rtol=1e-3)   # constant acceleration
        assert acc[0] > 0
        # Rendered: the key object's centroid row goes down while it flies.
        video = render(scene, "A")
        colour = PALETTE[scene["histories"]["A"]["colour"]]
        rows = []
        for frame in video[flying]:
            mask = np.abs(frame - colour).sum(-1) < 0.05
            rows.append(np.nonzero(mask)[0].mean())
        assert np.all(np.diff(rows) >= -0.5)


def test_deterministic_by_seed_any_size_and_length():
    a = make_quadruplet("continuity", seed=3, image_size=32, num_frames=10, textured=True)
    b = make_quadruplet("continuity", seed=3, image_size=32, num_frames=10, textured=True)
    c = make_quadruplet("continuity", seed=4, image_size=32, num_frames=10, textured=True)
    np.testing.assert_array_equal(a["videos"], b["videos"])
    assert np.abs(a["videos"] - c["videos"]).max() > 0
    big = make_quadruplet("solidity", seed=0, image_size=224, num_frames=5, dtype="uint8")
    assert big["videos"].shape == (4, 5, 224, 224, 3) and big["videos"].dtype == np.uint8
    long = make_voe_dataset(["inertia"], 1, image_size=32, num_frames=40)
    assert long["possible"].shape == (2, 40, 32, 32, 3)
    t1 = make_training_videos(6, seed=1, image_size=16, num_frames=8)
    t2 = make_training_videos(6, seed=1, image_size=16, num_frames=8)
    np.testing.assert_array_equal(t1, t2)
    assert t1.dtype == np.uint8 and t1.shape == (6, 8, 16, 16, 3)
    assert t1.std() > 0


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="'levitation'"):
        make_scene("levitation")
    with pytest.raises(ValueError, match="num_objects"):
        make_scene("inertia", num_objects=4)
    with pytest.raises(ValueError, match="image_size"):
        make_scene("inertia", image_size=4)
    with pytest.raises(ValueError, match="distractor_fraction"):
        make_training_videos(2, distractor_fraction=2.0)


def test_write_mp4_and_grasp_layout(tmp_path):
    from keras_jepa.evaluation.intuitive_physics import read_video_frames

    import os

    q = make_quadruplet("colour_constancy", seed=0, image_size=32, num_frames=6,
                        dtype="uint8")
    d = make_voe_dataset(["gravity", "inertia"], 1, image_size=16, num_frames=6)
    folder = write_voe_dataset(d, str(tmp_path / "grasp"), format="npy")
    assert sorted(os.listdir(folder)) == ["IP_gravity", "IP_inertia", "P_gravity",
                                          "P_inertia"]
    with pytest.raises(ValueError, match=".avi"):
        write_video(q["videos"][0], str(tmp_path / "v.avi"))
    pytest.importorskip("av")  # the mp4 half needs PyAV
    path = write_video(q["videos"][0], str(tmp_path / "v.mp4"))
    back = read_video_frames(path)
    assert back.shape == (6, 32, 32, 3)
    assert np.abs(back.astype(float) - q["videos"][0]).mean() < 4.0   # lossy but close
