"""The pixel-space predictor baseline: token order of the pixel targets, the surprise against
a step-by-step computation, training that lowers the loss, and serialization."""

import numpy as np
from keras import ops

from keras_jepa.backend.seeding import seed_everything
from keras_jepa.evaluation.pixel_predictor import (
    PixelPredictor,
    PixelSurpriseModel,
    patchify_video,
)
from keras_jepa.evaluation.surprise import preprocess_videos, video_surprise
from tests.test_case import run_serialization_test


def _tiny(seed=0):
    from keras_jepa.models import VisionTransformer

    seed_everything(seed)
    enc = VisionTransformer(image_size=16, patch_size=8, num_frames=4, tubelet_size=2,
                            hidden_dim=16, depth=1, num_heads=2, uniform_power=True)
    return PixelPredictor(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2)


def test_patchify_follows_the_encoder_token_order():
    # Token (t, h, w) of a (4, 16, 16) video with patch 8 and tubelet 2 holds the frames
    # 2t..2t+1, rows 8h..8h+7, columns 8w..8w+7, in (frame, row, column, channel) order.
    t, y, x, c = np.meshgrid(np.arange(4), np.arange(16), np.arange(16), np.arange(3),
                             indexing="ij")
    video = (1000 * t + 100 * (y // 8) + 10 * (x // 8) + c).astype("float32")[None]
    tokens = ops.convert_to_numpy(patchify_video(video, 8, 2))[0]
    assert tokens.shape == (8, 2 * 8 * 8 * 3)
    for k, (tt, hh, ww) in enumerate(np.ndindex(2, 2, 2)):
        block = video[0, 2 * tt:2 * tt + 2, 8 * hh:8 * hh + 8, 8 * ww:8 * ww + 8]
        np.testing.assert_array_equal(tokens[k], block.reshape(-1))


def test_pixel_surprise_matches_step_by_step_computation():
    model = _tiny()
    videos = np.random.default_rng(0).integers(0, 256, (2, 6, 16, 16, 3)).astype("uint8")
    head = PixelSurpriseModel(model, context_lengths=(2,))
    got = video_surprise(head, videos, stride=2, batch_size=4)
    assert got.shape == (2, 1, 2)
    frames = preprocess_videos(videos)
    for i in range(2):
        for w, s in enumerate((0, 2)):
            window = frames[i, s:s + 4][None]
            ctx, tgt = np.arange(4)[None], np.arange(4, 8)[None]
            z = model.encoder(window, token_indices=ctx)
            pred = ops.convert_to_numpy(model.pixel_head(model.predictor(z, ctx, tgt)))[0]
            # Target: the pixels of the last two frames, token by token (2 x 2 patches).
            last = window[0, 2:4].reshape(2, 2, 8, 2, 8, 3).transpose(1, 3, 0, 2, 4, 5)
            ref = np.abs(pred - last.reshape(4, -1)).mean()
            np.testing.assert_allclose(got[i, 0, w], ref, rtol=1e-4, atol=1e-5)


def test_training_lowers_the_pixel_loss_and_round_trips():
    from keras_jepa.masks import MultiBlockMask3D

    model = _tiny(1)
    rng = np.random.default_rng(0)
    # Videos of one colour each: the future is the context's colour (learnable quickly).
    videos = np.repeat(rng.random((32, 1, 1, 1, 3)), 4, 1).repeat(16, 2).repeat(16, 3)
    videos = preprocess_videos(videos.astype("float32"))
    sampler = MultiBlockMask3D((2, 2, 2), [dict(
        spatial_scale=(0.25, 0.25), temporal_scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0),
        num_blocks=1, max_temporal_keep=0.5)], seed=0)
    m = sampler(32, step=0)
    batch = {"videos": videos, "context_indices": tuple(m["context_indices"]),
             "target_indices": tuple(m["target_indices"])}
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = float(ops.convert_to_numpy(model.compute_loss(batch, y_pred=model(batch))))
    model.fit(batch, epochs=60, batch_size=32, verbose=0)
    after = float(ops.convert_to_numpy(model.compute_loss(batch, y_pred=model(batch))))
    # The best prediction that ignores the context (each channel's median value) is worse:
    # the trained predictor reads the colour from the context tokens.
    blind = float(np.abs(videos - np.median(videos, axis=(0, 1, 2, 3))).mean())
    assert after < 0.8 * blind and after < 0.8 * before, (before, blind, after)
    run_serialization_test(model, call=lambda mdl: mdl(batch)["predictions"][0])
