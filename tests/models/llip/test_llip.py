"""Llip, SigLIP and CLIP: losses, mixing, K=1 reduction, chunking, zero-shot, data, fit."""

import io
import math
import os
import tarfile

import keras
import numpy as np
import pytest
from PIL import Image

from keras_jepa.backend.replicas import gather_across_replicas
from keras_jepa.models.llip.data import (
    ImageCaptionArrays,
    ImageTextDataset,
    flatten_captions,
    make_caption_scenes,
    read_captions_file,
)
from keras_jepa.models.llip.zero_shot import (
    image_text_scores,
    retrieval_metrics,
    zero_shot_accuracy,
)
from keras_jepa.models import CLIP, Llip, SigLIP, TextEncoder, VisionTransformer
from keras_jepa.models.llip.model import (
    MixtureTokenEncoder,
    siglip_from_llip_weights,
    sigmoid_contrastive_loss,
    softmax_contrastive_loss,
)
from keras_jepa.models.llip.tokenizers import ByteTokenizer, WordTokenizer
from keras_jepa.backend.seeding import seed_everything
from tests.test_case import run_keras_file_test, run_serialization_test

VOCAB, LENGTH, SIZE = 24, 8, 16


def _towers(width=16):
    vit = VisionTransformer(image_size=SIZE, patch_size=8, hidden_dim=width, depth=1,
                            num_heads=2)
    text = TextEncoder(VOCAB, LENGTH, hidden_dim=width, depth=1, num_heads=2)
    return vit, text


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), "float64")


def _inputs(rng, n):
    images = rng.standard_normal((n, SIZE, SIZE, 3)).astype("float32")
    ids = rng.integers(4, VOCAB, (n, LENGTH)).astype("int32")
    ids[:, 0] = 1
    ids[:, -2:] = 0  # padding
    return images, ids


@pytest.fixture(scope="module")
def llip():
    seed_everything(0)
    vit, text = _towers()
    model = Llip(vit, text, num_mixture_tokens=3, mixing_heads=2, mixing_temperature=1.7,
                 pair_chunk_size=3)
    # Larger mixer weights than the init so that the mixing is far from uniform.
    for dense in (model.mixer.query, model.mixer.key):
        dense.kernel.assign(dense.kernel * 3.0)
    return model


@pytest.fixture(scope="module")
def encoded(llip):
    """4 images and 4 captions, encoded once (eager JAX compiles every new shape)."""
    images, ids = _inputs(np.random.default_rng(2), 4)
    return images, ids, llip.encode_images(images), llip.encode_texts(ids)


# ----------------------------------------------------------------------------- losses


def test_sigmoid_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 5)) * 4
    labels = 2 * np.eye(5) - 1
    expected = -np.sum(np.log(1 / (1 + np.exp(-labels * logits)))) / 5
    got = float(_np(sigmoid_contrastive_loss(logits.astype("float32"))))
    assert got == pytest.approx(expected, rel=1e-5)


def test_softmax_loss_matches_numpy():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 4)) * 3

    def ce(z):
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -np.mean(np.diag(logp))

    expected = 0.5 * (ce(logits) + ce(logits.T))
    got = float(_np(softmax_contrastive_loss(logits.astype("float32"))))
    assert got == pytest.approx(expected, rel=1e-5)


def test_standard_initial_scale_and_bias(llip):
    assert float(_np(llip.logit_scale)) == pytest.approx(math.log(10))
    assert float(_np(llip.logit_bias)) == pytest.approx(-10)
    clip = CLIP(*_towers())
    assert float(_np(clip.logit_scale)) == pytest.approx(math.log(1 / 0.07), rel=1e-6)
    assert not clip.logit_bias.trainable
    assert run_serialization_test(clip).loss_type == "softmax"


# ----------------------------------------------------------------------------- mixing


def _numpy_llip_scores(model, tokens, texts):
    """Float64 reference of the equations in keras_jepa/models/llip.py."""
    mixer = model.mixer
    h, d = mixer.num_heads, mixer.head_dim
    w = {name: [_np(v) for v in getattr(mixer, name).weights]
         for name in ("query", "key", "value", "proj")}
    q = (texts @ w["query"][0] + w["query"][1]).reshape(len(texts), h, d)
    k = (tokens @ w["key"][0] + w["key"][1]).reshape(*tokens.shape[:2], h, d)
    v = (tokens @ w["value"][0] + w["value"][1]).reshape(*tokens.shape[:2], h, d)
    logits = np.einsum("thd,bkhd->bthk", q, k) / (mixer.temperature * math.sqrt(d))
    alpha = np.exp(logits - logits.max(-1, keepdims=True))
    alpha /= alpha.sum(-1, keepdims=True)
    mixed = np.einsum("bthk,bkhd->bthd", alpha, v).reshape(len(tokens), len(texts), h * d)
    z = mixed @ w["proj"][0] + w["proj"][1]
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    return np.einsum("bte,te->bt", z, texts), alpha


def test_llip_scores_match_numpy_reference_and_chunking(llip, encoded):
    _, _, tokens, texts = encoded
    tokens, texts = _np(tokens), _np(texts)
    texts = np.concatenate([texts, texts[:3]])  # 7 texts: the last chunk of 3 is padded
    expected, alpha = _numpy_llip_scores(llip, tokens, texts)
    # The mixing is not uniform, so the reference really depends on the caption.
    assert alpha.max() > 0.6
    tokens32, texts32 = tokens.astype("float32"), texts.astype("float32")
    full = _np(llip.scores(tokens32, texts32, chunk_size=None))
    chunked = _np(llip.scores(tokens32, texts32, chunk_size=3))
    np.testing.assert_allclose(chunked, full, atol=1e-6)
    np.testing.assert_allclose(full, expected, atol=2e-5)


def test_k1_llip_equals_siglip_with_folded_weights():
    seed_everything(3)
    llip = Llip(*_towers(), num_mixture_tokens=1, mixing_heads=2)
    siglip = siglip_from_llip_weights(llip, SigLIP(*_towers()))
    images, ids = _inputs(np.random.default_rng(3), 4)
    out_l = llip({"images": images, "token_ids": ids})
    out_s = siglip({"images": images, "token_ids": ids})
    texts = llip.encode_texts(ids)
    llip_logits = _np(llip.logits(out_l["image_tokens"], texts))
    siglip_logits = _np(siglip.logits(out_s["image_tokens"], texts))
    np.testing.assert_allclose(llip_logits, siglip_logits, atol=1e-4)
    loss_l = float(_np(llip.compute_loss(y_pred=out_l, training=False)))
    loss_s = float(_np(siglip.compute_loss(y_pred=out_s, training=False)))
    assert loss_l == pytest.approx(loss_s, rel=1e-4)


def test_mixture_encoder_appends_tokens_and_keeps_the_vit(llip, encoded):
    images, _, tokens, _ = encoded
    tokens = _np(tokens)
    assert tokens.shape == (4, 3, 16)
    assert np.abs(tokens[0] - tokens[1]).max() > 1e-3  # the tokens attend to the patches
    # The wrapped ViT's own call is untouched: one token per patch, no mixture tokens.
    assert tuple(llip.image_encoder(images).shape) == (4, 4, 16)
    paths = [w.path for w in llip.vision_tower.weights]
    assert len(paths) == len(llip.image_encoder.weights) + 1
    assert sum(p.endswith("mixture_tokens") for p in paths) == 1


def test_diagnostics_detect_collapse(llip, encoded):
    _, _, tokens, texts = encoded
    diag = {k: _np(v) for k, v in llip.mixing_diagnostics(tokens, texts).items()}
    alpha = _np(llip.matched_weights(tokens, texts))
    entropy = -(alpha * np.log(alpha + 1e-9)).sum(-1).mean() / math.log(3)
    assert float(diag["entropy"]) == pytest.approx(entropy, rel=1e-4)
    np.testing.assert_allclose(diag["usage"], alpha.reshape(-1, 3).mean(0), atol=1e-6)
    # Zero keys give uniform weights: all three tokens used, normalised entropy 1.
    key = llip.mixer.key
    saved = [w.copy() for w in key.get_weights()]
    key.set_weights([np.zeros_like(saved[0]), np.zeros_like(saved[1])])
    uniform = llip.mixing_diagnostics(tokens, texts)
    key.set_weights(saved)
    assert float(_np(uniform["tokens_used"])) == pytest.approx(3.0, rel=1e-4)
    assert float(_np(uniform["entropy"])) == pytest.approx(1.0, rel=1e-4)


# ----------------------------------------------------------------------------- zero-shot


def test_zero_shot_scores_condition_on_text(llip, encoded):
    images, ids, tokens, texts = encoded
    scores = image_text_scores(llip, images, ids)
    # The same as scoring the K tokens of each image against every text ...
    np.testing.assert_allclose(scores, _np(llip.scores(tokens, texts)), atol=1e-5)
    # ... i.e. the cosine of the image vector mixed *for that text* with that text.
    z, t = _np(llip.contextual_embeddings(tokens, texts)), _np(texts)
    np.testing.assert_allclose(scores, np.einsum("bte,te->bt", z, t), atol=1e-5)
    assert np.abs(z[:, 0] - z[:, 1]).max() > 1e-2  # the image vector depends on the text
    cross = np.einsum("be,te->bt", z[:, 0], t)  # every text scored with text 0's vector
    assert np.abs(cross[:, 1:] - scores[:, 1:]).max() > 1e-3
    # Zero-shot classification with the captions as class prompts picks the argmax.
    labels = np.argmax(scores, axis=1)
    assert zero_shot_accuracy(llip, images, labels, ids) == 1.0
    assert zero_shot_accuracy(llip, images, (labels + 1) % 4, ids) == 0.0


def test_retrieval_metrics_closed_form():
    scores = np.array([[0.9, 0.8, 0.1, 0.3],
                       [0.5, 0.2, 0.7, 0.6],
                       [0.1, 0.95, 0.2, 0.4]])
    owners = np.array([0, 0, 1, 2])
    m = retrieval_metrics(scores, owners, ks=(1, 2))
    # text ranks: t0 -> image 0 rank 1; t1 -> image 0 rank 2; t2 -> image 1 rank 1;
    # t3 -> image 2 rank 2.
    assert m["text_to_image_r@1"] == pytest.approx(0.5)
    assert m["text_to_image_r@2"] == pytest.approx(1.0)
    # image 0 top text t0 (hit); image 1 top t2 (hit); image 2 top t1 (miss), 2nd t3 (hit).
    assert m["image_to_text_r@1"] == pytest.approx(2 / 3)
    assert m["image_to_text_r@2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one index per text"):
        retrieval_metrics(scores, owners[:3])


# ----------------------------------------------------------------------------- text


def test_tokenizer_round_trips():
    byte = ByteTokenizer(max_length=24)
    texts = ["a red circle", "naïve café ✓", ""]
    assert byte.decode(byte.encode(texts)) == texts
    word = WordTokenizer.from_texts(["A red circle, top left", "a blue square"], max_length=10)
    ids = word.encode(["a red square , top left"])
    assert word.decode(ids) == ["a red square , top left"]
    assert ids[0, 0] == word.bos_id and ids[0, 7] == word.eos_id and ids[0, 8] == 0
    again = run_serialization_test(word, through_json=True)
    np.testing.assert_array_equal(again.encode(["blue circle left"]),
                                  word.encode(["blue circle left"]))
    assert byte.encode(["x" * 100]).shape == (1, 24)  # truncation keeps the shape ...
    assert byte.encode(["x" * 100])[0, -1] == byte.eos_id  # ... and the eos
    with pytest.raises(ValueError, match="max_length"):
        ByteTokenizer(max_length=2)


def test_text_encoder_ignores_padding():
    text = TextEncoder(VOCAB, LENGTH, hidden_dim=16, depth=1, num_heads=2)
    ids = np.array([[1, 5, 6, 2, 0, 0, 0, 0]], "int32")
    other_padding = ids.copy()
    other_padding[0, 5] = 9  # a non-zero id after the sequence changes the output ...
    a, b = _np(text(ids)), _np(text(other_padding))
    assert np.abs(a - b).max() > 1e-4
    short = TextEncoder(VOCAB, LENGTH, hidden_dim=16, depth=1, num_heads=2)
    short.set_weights(text.get_weights())
    np.testing.assert_allclose(_np(short(ids[:, :4])), a, atol=1e-5)  # ... padding does not


# ----------------------------------------------------------------------------- saving


def test_serialization_round_trip(llip, encoded, tmp_path):
    images, ids, _, _ = encoded
    run_keras_file_test(
        llip, tmp_path / "llip.keras",
        call=lambda m: m.logits(m.encode_images(images), m.encode_texts(ids)), atol=1e-5)


def test_token_init_std_reaches_the_appended_tokens_and_the_config():
    seed_everything(0)
    for cls in (SigLIP, Llip):
        vit, text = _towers(width=32)
        model = cls(vit, text, token_init_std=0.02)
        tokens = _np(model.vision_tower.mixture_tokens)
        assert tokens.std() < 0.05
        assert model.vision_tower.init_std == 0.02
        assert run_serialization_test(model).token_init_std == 0.02


def test_bad_arguments_raise():
    vit, text = _towers()
    with pytest.raises(ValueError, match="'hinge'"):
        Llip(vit, text, loss="hinge")
    with pytest.raises(ValueError, match="num_mixture_tokens"):
        Llip(vit, text, num_mixture_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        Llip(vit, text, mixing_temperature=0.0)
    with pytest.raises(ValueError, match="token_ids"):
        Llip(vit, text)({"images": np.zeros((1, SIZE, SIZE, 3), "float32")})
    rope = VisionTransformer(image_size=SIZE, patch_size=8, hidden_dim=16, depth=1,
                             num_heads=2, position_embedding="rope")
    with pytest.raises(ValueError, match="rope"):
        Llip(rope, text)


def test_gather_across_replicas_is_identity_on_one_device():
    x = np.arange(6, dtype="float32").reshape(3, 2)
    np.testing.assert_array_equal(_np(gather_across_replicas(x)), x)


# ----------------------------------------------------------------------------- data


def test_caption_scenes_render_and_describe_their_objects():
    scenes = make_caption_scenes(6, image_size=24, grid=2, objects_per_image=3,
                                 captions_per_image=3, objects_per_caption=(1, 2), noise=0.0,
                                 standardize=False,
                                 seed=1)
    images, objects = scenes["images"], scenes["objects"]
    assert images.shape == (6, 24, 24, 3)
    colors = np.asarray([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.15, 0.3, 0.95],
                         [0.95, 0.9, 0.1], [0.9, 0.2, 0.85], [0.1, 0.85, 0.9]])
    for i in range(6):
        assert (objects[i, :, 0] >= 0).sum() == 3
        for cell in range(4):
            r, c = divmod(cell, 2)
            centre = images[i, r * 12 + 6, c * 12 + 6]
            if objects[i, cell, 0] < 0:
                np.testing.assert_allclose(centre, 0.08, atol=1e-6)
            else:  # every shape covers its cell's centre
                np.testing.assert_allclose(centre, colors[objects[i, cell, 1]], atol=1e-6)
        names = {f"a {scenes['color_names'][col]} {scenes['shape_names'][shp]} "
                 f"{scenes['position_names'][cell]}"
                 for cell, (shp, col) in enumerate(objects[i]) if shp >= 0}
        assert len(set(scenes["captions"][i])) == 3  # distinct captions
        for caption in scenes["captions"][i]:
            parts = caption.split(" and ")
            assert 1 <= len(parts) <= 2 and set(parts) <= names


def test_image_caption_arrays_pick_one_of_each_images_captions():
    captions = [["a"], ["b", "c"], ["d"], ["e"]]
    tok = WordTokenizer.from_texts(["a b c d e"], max_length=4)
    ds = ImageCaptionArrays(np.arange(4, dtype="float32")[:, None, None, None] * np.ones(
        (4, 2, 2, 3)), captions, tok, batch_size=2, seed=0)
    seen = set()
    for epoch in range(6):
        ds.epoch = epoch
        for i in range(len(ds)):
            batch = ds[i]
            for image, ids in zip(batch["images"], batch["token_ids"]):
                text = tok.decode(ids)[0]
                assert text in captions[int(image[0, 0, 0])]
                seen.add(text)
    assert seen == {"a", "b", "c", "d", "e"}


def _png_bytes(value):
    buffer = io.BytesIO()
    Image.fromarray(np.full((10, 12, 3), value, "uint8")).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_text_dataset_from_csv_and_webdataset(tmp_path):
    tok = ByteTokenizer(max_length=12)
    for name, value in (("a.png", 10), ("b.png", 200)):
        (tmp_path / name).write_bytes(_png_bytes(value))
    csv_path = tmp_path / "captions.csv"
    csv_path.write_text("image,caption\na.png,dark one\nb.png,light\na.png,dark two\n")
    assert read_captions_file(str(csv_path)) == [("a.png", ["dark one", "dark two"]),
                                                 ("b.png", ["light"])]
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for key, value, caption in (("s0", 10, "dark one\ndark two"), ("s1", 200, "light")):
            for ext, data in ((".png", _png_bytes(value)), (".txt", caption.encode())):
                info = tarfile.TarInfo(f"part/{key}{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    from keras_jepa.data.transforms import image_transform

    transform = image_transform(8, training=False)
    datasets = [
        ImageTextDataset.from_captions_file(str(csv_path), tok, 2, transform=transform,
                                            shuffle=False, seed=0),
        ImageTextDataset.from_webdataset(str(shard), tok, 2, transform=transform,
                                         shuffle=False, seed=0),
    ]
    for ds in datasets:
        batch = ds[0]
        assert batch["images"].shape == (2, 8, 8, 3)
        texts = tok.decode(batch["token_ids"])
        dark = batch["images"][0].mean() < batch["images"][1].mean()
        assert dark and texts[0] in ("dark one", "dark two") and texts[1] == "light"


# ----------------------------------------------------------------------------- training


def test_fit_decreases_loss_and_reports_diagnostics():
    seed_everything(9)
    scenes = make_caption_scenes(64, image_size=SIZE, grid=2, seed=2)
    texts, _ = flatten_captions(scenes["captions"])
    tok = WordTokenizer.from_texts(texts, max_length=12)
    ds = ImageCaptionArrays(scenes["images"], scenes["captions"], tok, batch_size=16, seed=0)
    vit = VisionTransformer(image_size=SIZE, patch_size=8, hidden_dim=24, depth=1,
                            num_heads=2)
    text = TextEncoder(tok.vocabulary_size, 12, hidden_dim=24, depth=1, num_heads=2)
    model = Llip(vit, text, num_mixture_tokens=4, mixing_heads=2, pair_chunk_size=8)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    history = model.fit(ds, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 0.3
    assert 0.0 <= history["mixing_entropy"][-1] <= 1.0 + 1e-5
    assert 1.0 - 1e-5 <= history["tokens_used"][-1] <= 4.0 + 1e-4


def test_training_program_cli_defaults_match_the_function():
    # The measured defaults are documented once; the CLI and the Python entry point agree.
    import argparse
    import inspect

    from keras_jepa.programs.train_llip import add_arguments, train_and_evaluate

    args = add_arguments(argparse.ArgumentParser()).parse_args([])
    defaults = inspect.signature(train_and_evaluate).parameters
    for name in ("steps", "batch_size", "learning_rate", "num_train", "num_eval",
                 "image_size", "seed"):
        assert getattr(args, name) == defaults[name].default, name
