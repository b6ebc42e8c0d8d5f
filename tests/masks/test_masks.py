"""Mask samplers (numpy only): static shapes, determinism, faithful quirks, statistics."""

import pickle

import numpy as np
import pytest

from keras_jepa import masks
from keras_jepa.masks import (
    MultiBlockMask,
    MultiBlockMask3D,
    RandomTubeMask,
    first_occurrence_mask,
)

# Reference statistics of the OFFICIAL collators, measured once by running their code with
# torch 2.13 (CPU): facebookresearch/ijepa src/masks/multiblock.py @52c1ae9 with the configs'
# values on a 16x16 grid (ViT-H/14 at 224), batch 128, 300 batches after torch.manual_seed(0);
# facebookresearch/jepa src/masks/multiblock3d.py @51c59d5 with configs/pretrain/vitl16.yaml's
# two mask configs on an 8x14x14 grid (16 frames, tubelet 2, 224/16), batch 24, 2000 batches;
# random_tube.py with ratio 0.9. A fraction is the number of distinct tokens of an image in
# the collator's output (after its truncation to the batch minimum) over the grid size,
# averaged over images; the I-JEPA target fraction is the union of the 4 target masks.
OFFICIAL_IJEPA = {
    "context_fraction": 0.2668,  # mean kept context tokens 68.3 (110.0 before truncation)
    "target_fraction": 0.4490,  # union of the 4 blocks
    "target_block_fraction": 0.1726,  # mean block area 44.2, never truncated
}
OFFICIAL_VJEPA = [
    # short-range config: 8 blocks of spatial scale 0.15 (kept 363.8 / 748.5 tokens;
    # before truncation 585.4 / 982.6)
    {"context_fraction": 0.2320, "target_fraction": 0.4773},
    # long-range config: 2 blocks of spatial scale 0.7 (kept 99.9 / 1103.3; before 294.4 / 1273.6)
    {"context_fraction": 0.0637, "target_fraction": 0.7037},
]
OFFICIAL_TUBE_CONTEXT_FRACTION = 152 / 1568  # 19 of 196 positions kept, over 8 time steps
TOLERANCE = 0.02  # required agreement with the official sampler: within 2 percentage points


def _membership(arrays, num_tokens):
    """Boolean (B, N): which tokens appear in any of the (B, K) index arrays."""
    batch = arrays[0].shape[0]
    flat = np.concatenate(arrays, axis=1) + (np.arange(batch) * num_tokens)[:, None]
    member = np.zeros(batch * num_tokens, dtype=bool)
    member[flat.reshape(-1)] = True
    return member.reshape(batch, num_tokens)


def _fractions(sampler, batch_size, steps, groups):
    """Mean distinct-token fractions over ``steps`` batches: for each group of
    ``(context arrays, target arrays)`` positions, the context union, the target union and the
    mean single target array."""
    n = sampler.num_tokens
    totals = np.zeros((len(groups), 3))
    for step in range(steps):
        out = sampler(batch_size, step=step)
        for g, (ctx, tgt) in enumerate(groups):
            ctx = [out["context_indices"][i] for i in ctx]
            tgt = [out["target_indices"][i] for i in tgt]
            totals[g] += (
                _membership(ctx, n).sum(1).mean() / n,
                _membership(tgt, n).sum(1).mean() / n,
                np.mean([_membership([t], n).sum(1).mean() / n for t in tgt]),
            )
    return totals / steps


def _config(**changes):
    return [dict(masks.multiblock3d.DEFAULT_CONFIGS[0], **changes)]


def _all_samplers():
    return [
        MultiBlockMask(16),
        MultiBlockMask(16, faithful=False),
        MultiBlockMask((12, 10), nenc=2, npred=3, allow_overlap=True),
        MultiBlockMask3D((8, 14, 14)),
        MultiBlockMask3D((8, 14, 14), faithful=False),
        RandomTubeMask((8, 14, 14), ratio=0.9),
    ]


# -- contract: shapes, dtype, range, order ---------------------------------------------------


@pytest.mark.parametrize("index", range(6))
def test_static_shapes_int32_sorted_in_range(index):
    sampler = _all_samplers()[index]
    expected = sampler.output_shapes(8)
    for _ in range(50):
        out = sampler(8)
        assert sorted(out) == ["context_indices", "target_indices"]
        for key in out:
            assert isinstance(out[key], tuple)
            assert [a.shape for a in out[key]] == expected[key]
            for a in out[key]:
                assert a.dtype == np.int32
                assert a.min() >= 0 and a.max() < sampler.num_tokens
                assert np.all(np.diff(a, axis=1) >= 0)
    # The token counts depend on the configuration only, not on the batch size.
    for batch_size in (1, 3, 128):
        out = sampler(batch_size)
        shapes = {key: [a.shape for a in arrays] for key, arrays in out.items()}
        assert shapes == sampler.output_shapes(batch_size)
        assert [k for _, k in shapes["target_indices"]] == [
            k for _, k in expected["target_indices"]
        ]


def test_mask_counts_per_method():
    out = MultiBlockMask((12, 10), nenc=2, npred=3)(4)
    assert len(out["context_indices"]) == 2 and len(out["target_indices"]) == 3
    out = MultiBlockMask3D((8, 14, 14))(4)
    assert len(out["context_indices"]) == 2 and len(out["target_indices"]) == 2
    out = RandomTubeMask((8, 14, 14))(4)
    assert len(out["context_indices"]) == 1 and len(out["target_indices"]) == 1


def test_no_padding_means_unique_indices():
    # Budgets below the smallest possible mask: no padding, so every row is strictly increasing.
    sampler = MultiBlockMask(16, num_context_tokens=30, num_target_tokens=30)
    for step in range(20):
        out = sampler(32, step=step)
        for a in out["context_indices"] + out["target_indices"]:
            assert np.all(np.diff(a, axis=1) > 0)
    sampler = MultiBlockMask3D(
        (8, 14, 14), configs=_config(num_context_tokens=100, num_target_tokens=400)
    )
    out = sampler(16, step=0)
    for a in out["context_indices"] + out["target_indices"]:
        assert np.all(np.diff(a, axis=1) > 0)
    out = RandomTubeMask((8, 14, 14))(16)
    for a in out["context_indices"] + out["target_indices"]:
        assert np.all(np.diff(a, axis=1) > 0)


def test_padding_repeats_own_tokens_adjacent():
    # 64 > every block area (at most 54 here): each target row is its whole block plus repeats.
    sampler = MultiBlockMask(16, num_target_tokens=64)
    for step in range(10):
        for target in sampler(16, step=step)["target_indices"]:
            first = first_occurrence_mask(target)
            assert not first.all(axis=1).any()  # every row has repeats
            for row, keep in zip(target, first):
                distinct = row[keep]
                np.testing.assert_array_equal(distinct, np.unique(row))
                rows, cols = np.divmod(distinct, 16)
                height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
                assert distinct.size == height * width  # still exactly one rectangle


def test_first_occurrence_mask():
    np.testing.assert_array_equal(
        first_occurrence_mask(np.array([[1, 1, 2, 5, 5, 5], [0, 1, 2, 3, 4, 5]])),
        [[True, False, True, True, False, False], [True] * 6],
    )


# -- determinism, resume, pickling ------------------------------------------------------------


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert len(a[key]) == len(b[key])
        for x, y in zip(a[key], b[key]):
            np.testing.assert_array_equal(x, y)


def _differs(a, b):
    return any(not np.array_equal(x, y) for key in a for x, y in zip(a[key], b[key]))


@pytest.mark.parametrize("index", range(6))
def test_batch_is_a_function_of_seed_and_step(index):
    sampler, twin = _all_samplers()[index], _all_samplers()[index]
    _assert_same(sampler(8, step=5), twin(8, step=5))
    assert _differs(sampler(8, step=5), sampler(8, step=6))
    other = type(sampler)(**dict(sampler.get_config(), seed=1))
    assert _differs(sampler(8, step=5), other(8, step=5))
    # step=None walks the counter 0, 1, 2, ...; an explicit step leaves it alone.
    sequential = [twin(8) for _ in range(3)]
    for step, out in enumerate(sequential):
        _assert_same(out, sampler(8, step=step))
    assert twin.state == {"step": 3} and sampler.state == {"step": 0}


def test_resume_with_state():
    sampler = MultiBlockMask(16, seed=3)
    reference = [sampler(16) for _ in range(6)]
    resumed = MultiBlockMask(16, seed=3)
    resumed.set_state({"step": 4})
    _assert_same(resumed(16), reference[4])
    _assert_same(resumed(16), reference[5])
    with pytest.raises(ValueError, match="step"):
        resumed.set_state({"step": -1})
    with pytest.raises(ValueError, match="state"):
        resumed.set_state(4)


@pytest.mark.parametrize("index", range(6))
def test_pickle_round_trip(index):
    sampler = _all_samplers()[index]
    sampler(4)
    sampler(4)
    clone = pickle.loads(pickle.dumps(sampler))
    assert clone.state == sampler.state == {"step": 2}
    _assert_same(clone(4), sampler(4))
    _assert_same(clone(4, step=11), sampler(4, step=11))


@pytest.mark.parametrize("index", range(6))
def test_get_config_round_trip(index):
    sampler = _all_samplers()[index]
    clone = type(sampler)(**sampler.get_config())
    assert clone.output_shapes(2) == sampler.output_shapes(2)
    _assert_same(clone(4, step=7), sampler(4, step=7))


# -- geometry: overlap and the faithful quirks --------------------------------------------------


@pytest.mark.parametrize("faithful", [True, False])
def test_context_and_targets_do_not_overlap(faithful):
    sampler = MultiBlockMask(16, faithful=faithful)
    for step in range(10):
        out = sampler(64, step=step)
        context = _membership(out["context_indices"], 256)
        assert not (context & _membership(out["target_indices"], 256)).any()
    sampler = MultiBlockMask3D((8, 14, 14), faithful=faithful)
    for step in range(10):
        out = sampler(16, step=step)
        for ctx, tgt in zip(out["context_indices"], out["target_indices"]):
            assert not (_membership([ctx], 1568) & _membership([tgt], 1568)).any()
    out = RandomTubeMask((8, 14, 14))(16)
    ctx, tgt = _membership(out["context_indices"], 1568), _membership(out["target_indices"], 1568)
    assert not (ctx & tgt).any() and (ctx | tgt).all()


def test_allow_overlap_lets_context_cover_targets():
    sampler = MultiBlockMask(16, allow_overlap=True)
    out = sampler(64, step=0)
    overlap = _membership(out["context_indices"], 256) & _membership(out["target_indices"], 256)
    assert overlap.any()


def _covered(sampler, steps=40, batch_size=64):
    """Boolean (H, W): tokens that appeared in a target (and in a context) over many batches."""
    target = np.zeros(sampler.num_tokens, dtype=bool)
    context = np.zeros(sampler.num_tokens, dtype=bool)
    for step in range(steps):
        out = sampler(batch_size, step=step)
        target[np.concatenate(out["target_indices"]).ravel()] = True
        context[np.concatenate(out["context_indices"]).ravel()] = True
    return target.reshape(sampler.grid_size), context.reshape(sampler.grid_size)


def test_faithful_never_covers_last_row_and_column():
    target, context = _covered(MultiBlockMask(16, faithful=True))
    assert not target[-1].any() and not target[:, -1].any()
    assert not context[-1].any() and not context[:, -1].any()
    assert target[:-1, :-1].all()  # everything else is reachable
    target, context = _covered(MultiBlockMask(16, faithful=False))
    assert target[-1].any() and target[:, -1].any() and target[-1, -1]
    assert context[-1].any() and context[:, -1].any()


def test_full_size_blocks_only_when_not_faithful():
    config = dict(
        pred_mask_scale=(1.0, 1.0),
        aspect_ratio=(1.0, 1.0),
        enc_mask_scale=(0.5, 0.5),
        npred=1,
        min_keep=0,
        allow_overlap=True,
    )
    whole = MultiBlockMask(6, faithful=False, num_target_tokens=36, **config)
    np.testing.assert_array_equal(whole(4)["target_indices"][0], np.tile(np.arange(36), (4, 1)))
    capped = MultiBlockMask(6, faithful=True, num_target_tokens=25, **config)
    target = capped(4)["target_indices"][0]  # a 5x5 block, corner forced to (0, 0)
    np.testing.assert_array_equal(
        target, np.tile((np.arange(5)[:, None] * 6 + np.arange(5)).ravel(), (4, 1))
    )


def _block_shapes(sampler, steps):
    """The (h, w) target block shapes drawn over ``steps`` batches (one size per batch)."""
    shapes = set()
    for step in range(steps):
        row = sampler(1, step=step)["target_indices"][0][0]
        rows, cols = np.divmod(np.unique(row), sampler.grid_size[1])
        shapes.add((int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1))
    return shapes


def test_faithful_one_draw_sets_scale_and_aspect():
    # Oracle: the (h, w) pairs reachable when ONE uniform u sets both scale and aspect ratio.
    u = np.linspace(0.0, 1.0, 20001)
    keep = np.floor(256 * (0.15 + 0.05 * u))
    ratio = 0.75 + 0.75 * u
    coupled = set(
        zip(
            np.round(np.sqrt(keep * ratio)).astype(int).tolist(),
            np.round(np.sqrt(keep / ratio)).astype(int).tolist(),
        )
    )
    faithful = _block_shapes(MultiBlockMask(16, num_target_tokens=64), 150)
    assert faithful <= coupled and len(faithful) >= 4
    independent = _block_shapes(MultiBlockMask(16, faithful=False, num_target_tokens=64), 150)
    assert independent - coupled  # separate draws reach shapes one draw cannot


def test_faithful_context_truncation_keeps_lowest_indices():
    def mean_index(faithful):
        sampler = MultiBlockMask(16, faithful=faithful, num_context_tokens=30)
        return np.mean([sampler(64, step=s)["context_indices"][0].mean() for s in range(10)])

    # The first 30 context tokens lie in the top rows; a random subset spreads over the block.
    assert mean_index(True) < 0.5 * mean_index(False)


def test_vjepa_faithful_truncation_drops_last_frames():
    def frame_share(faithful):
        sampler = MultiBlockMask3D((8, 14, 14), faithful=faithful)
        frames = (
            np.concatenate([sampler(24, step=s)["target_indices"][0].ravel() for s in range(20)])
            // 196
        )
        counts = np.bincount(frames, minlength=8)
        return counts[-1] / counts[0]

    assert frame_share(True) < 0.2  # truncation to the lowest indices empties the last frame
    assert 0.9 < frame_share(False) < 1.1  # a random subset keeps frames balanced


def test_vjepa_tubes_and_max_temporal_keep():
    # Temporal scale 1: targets are tubes, the same spatial tokens in every frame. A budget of
    # the whole grid keeps every target token (plus repeats), so the union is visible.
    sampler = MultiBlockMask3D((8, 14, 14), configs=_config(num_target_tokens=1568))
    target = _membership(sampler(8, step=0)["target_indices"], 1568).reshape(8, 8, 196)
    np.testing.assert_array_equal(target, np.broadcast_to(target[:, :1], target.shape))
    # Short blocks in time, context limited to the first half of the clip: the second half
    # joins the target (official behaviour).
    config = dict(
        spatial_scale=(0.2, 0.3),
        temporal_scale=(0.25, 0.5),
        aspect_ratio=(0.75, 1.5),
        num_blocks=3,
        max_temporal_keep=0.5,
        num_target_tokens=288,
    )
    out = MultiBlockMask3D((8, 6, 6), configs=[config])(16, step=0)
    assert out["context_indices"][0].max() < 4 * 36
    target = _membership(out["target_indices"], 288).reshape(16, 8, 36)
    assert target[:, 4:].all()
    assert not target[:, :4].all(axis=(1, 2)).any()
    # Blocks shorter than the clip: frames differ.
    assert any((row != row[:1]).any() for row in target[:, :4])


def test_random_tube_semantics():
    sampler = RandomTubeMask((4, 5, 5), ratio=0.6)
    assert (sampler.num_context_tokens, sampler.num_target_tokens) == (4 * 10, 4 * 15)
    out = sampler(32, step=0)
    context = out["context_indices"][0].reshape(32, 4, 10)
    np.testing.assert_array_equal(context % 25, np.broadcast_to(context[:, :1] % 25, context.shape))
    positions = np.concatenate(
        [sampler(32, step=s)["context_indices"][0][:, :10].ravel() for s in range(20)]
    )
    counts = np.bincount(positions, minlength=25)
    assert counts.min() > 0.6 * counts.mean()  # every position gets kept, roughly uniformly


# -- statistics against the official collators -------------------------------------------------


def test_ijepa_statistics_match_official():
    sampler = MultiBlockMask(16)
    assert abs(sampler.num_context_tokens - 68.3) <= 1.5
    assert abs(sampler.num_target_tokens - 44.2) <= 1.0
    ((context, target, block),) = _fractions(sampler, 128, 150, [([0], [0, 1, 2, 3])])
    assert abs(context - OFFICIAL_IJEPA["context_fraction"]) < TOLERANCE
    assert abs(target - OFFICIAL_IJEPA["target_fraction"]) < TOLERANCE
    assert abs(block - OFFICIAL_IJEPA["target_block_fraction"]) < TOLERANCE


def test_vjepa_statistics_match_official():
    sampler = MultiBlockMask3D((8, 14, 14))
    for kc, kt, official in zip(
        sampler.num_context_tokens, sampler.num_target_tokens, ((363.8, 748.5), (99.9, 1103.3))
    ):
        assert abs(kc - official[0]) <= 5 and abs(kt - official[1]) <= 5
    stats = _fractions(sampler, 24, 60, [([0], [0]), ([1], [1])])
    for (context, target, _), reference in zip(stats, OFFICIAL_VJEPA):
        assert abs(context - reference["context_fraction"]) < TOLERANCE
        assert abs(target - reference["target_fraction"]) < TOLERANCE


def test_random_tube_statistics_match_official():
    ((context, target, _),) = _fractions(
        RandomTubeMask((8, 14, 14), ratio=0.9), 24, 5, [([0], [0])]
    )
    assert context == pytest.approx(OFFICIAL_TUBE_CONTEXT_FRACTION)
    assert target == pytest.approx(1 - OFFICIAL_TUBE_CONTEXT_FRACTION)


def test_budget_does_not_depend_on_seed_but_on_reference_batch():
    assert (
        MultiBlockMask(16, seed=0).num_context_tokens
        == MultiBlockMask(16, seed=9).num_context_tokens
    )
    # A larger reference batch has a smaller expected batch minimum.
    assert (
        MultiBlockMask(16, reference_batch_size=512).num_context_tokens
        < MultiBlockMask(16).num_context_tokens
    )
    assert MultiBlockMask(16, reference_batch_size=1).num_context_tokens > 100


# -- argument validation ------------------------------------------------------------------------
# One test per class, looping over the cases (each case is named in the failure message).


def _assert_all_raise(cls, cases):
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            cls(**kwargs)
            pytest.fail(f"{cls.__name__}(**{kwargs}) did not raise")


def test_multiblock_bad_arguments():
    _assert_all_raise(
        MultiBlockMask,
        [
            (dict(grid_size=(16,)), "grid_size"),
            (dict(grid_size=(16, 0)), "grid_size"),
            (dict(grid_size=1), "grid_size"),  # faithful needs >= 2 (blocks capped at H - 1)
            (dict(grid_size=16, enc_mask_scale=(0.9, 0.8)), "enc_mask_scale"),
            (dict(grid_size=16, pred_mask_scale=(0.0, 0.2)), "pred_mask_scale"),
            (dict(grid_size=16, pred_mask_scale=(0.1, 1.5)), "pred_mask_scale"),
            (dict(grid_size=16, aspect_ratio=(-1, 2)), "aspect_ratio"),
            (dict(grid_size=16, aspect_ratio="wide"), "aspect_ratio"),
            (dict(grid_size=16, nenc=0), "nenc"),
            (dict(grid_size=16, npred=1.5), "npred"),
            (dict(grid_size=16, min_keep=300), "min_keep"),
            (dict(grid_size=16, enc_mask_scale=(0.02, 0.05), min_keep=10), "min_keep"),
            (dict(grid_size=16, seed=-1), "seed"),
            (dict(grid_size=16, seed=1.0), "seed"),
            (dict(grid_size=16, num_context_tokens=0), "num_context_tokens"),
            (dict(grid_size=16, num_target_tokens=257), "num_target_tokens"),
            (dict(grid_size=16, reference_batch_size=0), "reference_batch_size"),
        ],
    )


def test_multiblock3d_bad_arguments():
    grid = (8, 14, 14)
    _assert_all_raise(
        MultiBlockMask3D,
        [
            (dict(grid_size=(14, 14)), "grid_size"),
            (dict(grid_size=grid, configs=[]), "configs"),
            (dict(grid_size=grid, configs=dict(num_blocks=2)), "configs"),
            (dict(grid_size=grid, configs=_config(blocks=3)), "blocks"),
            (dict(grid_size=grid, configs=[{"num_blocks": 2}]), "missing"),
            (dict(grid_size=grid, configs=_config(spatial_scale=(0.5, 0.1))), "spatial_scale"),
            (dict(grid_size=grid, configs=_config(temporal_scale=(0.0, 1.0))), "temporal_scale"),
            (dict(grid_size=grid, configs=_config(num_blocks=0)), "num_blocks"),
            (dict(grid_size=grid, configs=_config(max_temporal_keep=0.0)), "max_temporal_keep"),
            (dict(grid_size=grid, configs=_config(max_keep=0)), "max_keep"),
            (dict(grid_size=grid, configs=_config(num_target_tokens=1569)), "num_target_tokens"),
            (
                dict(
                    grid_size=grid, configs=_config(spatial_scale=(1.0, 1.0), aspect_ratio=(1, 1))
                ),
                "whole",
            ),
            (dict(grid_size=grid, seed=-3), "seed"),
            (dict(grid_size=grid, reference_batch_size=-3), "reference_batch_size"),
        ],
    )


def test_random_tube_bad_arguments():
    _assert_all_raise(
        RandomTubeMask,
        [
            (dict(grid_size=(14, 14)), "grid_size"),
            (dict(grid_size=(8, 14, 14), ratio=1.0), "ratio"),
            (dict(grid_size=(8, 14, 14), ratio=0.0), "ratio"),
            (dict(grid_size=(8, 14, 14), ratio=0.999), "ratio"),  # keeps no spatial position
            (dict(grid_size=(8, 14, 14), ratio=True), "ratio"),
            (dict(grid_size=(8, 14, 14), seed="0"), "seed"),
        ],
    )


def test_call_bad_arguments():
    sampler = MultiBlockMask(16)
    for batch_size, step, match in [
        (0, None, "batch_size"),
        (2.0, None, "batch_size"),
        (2, -1, "step"),
        (2, "3", "step"),
    ]:
        with pytest.raises(ValueError, match=match):
            sampler(batch_size, step=step)
    assert sampler.state == {"step": 0}


def test_max_keep_caps_the_context_budget():
    sampler = MultiBlockMask3D((8, 14, 14), configs=_config(max_keep=50))
    assert sampler.num_context_tokens == (50,)
    assert sampler(2)["context_indices"][0].shape == (2, 50)
