"""``keras-jepa demo``: I-JEPA pretraining on images that ship with the install, then a
linear probe of the learned encoder against the same encoder at random init.

1. Data: the scikit-learn digits (1,797 images, upsampled to 32x32 RGB), split 75/25
   (stratified). Only the training split is used for pretraining, without labels.
2. Pretraining: ``keras_jepa.programs.pretrain.pretrain`` with the ``ijepa_tiny_cpu`` config
   (the official I-JEPA recipe: multi-block masks, EMA target encoder, smooth-L1 on
   layer-normed targets, AdamW with warmup-cosine lr and cosine weight decay), fed from the
   in-memory arrays through the same machinery as a folder run (random resized crops,
   per-epoch shuffling, masks in the data pipeline, ``model.fit``).
3. Probe: logistic regression on the mean-pooled features of the trained **target** encoder
   (the one the papers evaluate), trained on the training split and scored on the held-out
   test split; the same probe on the same architecture at its random initial weights.

The loss curve is saved as a PNG next to the logs in ``output_dir``.
"""

import os
import time

import numpy as np


def encoder_features(encoder, images, batch_size=256):
    """Mean-pooled token features of ``encoder`` on normalised ``images``.

    Example:

    >>> from keras_jepa.models.jepa.recipes import build_encoder, get_config
    >>> enc = build_encoder(get_config("ijepa_tiny_cpu").replace(depth=1))
    >>> encoder_features(enc, np.zeros((2, 32, 32, 3), "float32")).shape
    (2, 64)
    """
    from keras_jepa.data.arrays import normalize_images

    tokens = encoder.predict(normalize_images(images), batch_size=batch_size, verbose=0)
    return np.asarray(tokens).mean(axis=1)


def linear_probe(train_x, train_y, test_x, test_y, c=1.0):
    """Test accuracy of a standardised logistic-regression probe.

    Example:

    >>> x = np.random.RandomState(0).randn(40, 3); y = (x[:, 0] > 0).astype(int)
    >>> linear_probe(x[:30], y[:30], x[30:], y[30:]) > 0.8
    True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=c))
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def run(config="ijepa_tiny_cpu", epochs=None, batch_size=None, seed=0, output_dir=None,
        verbose=1, **overrides):
    """Runs the demo and returns a dict of results.

    Args:
        config: a pretraining config name or ``PretrainConfig`` (images at 32x32).
        epochs: pretraining epochs (default: the config's).
        batch_size: images per step (default: the config's, 128).
        seed: seeds the split, the weights, the data order and the masks.
        output_dir: logs, checkpoints, encoder preset and ``loss.png`` (default:
            ``keras_jepa_demo_digits`` in the current directory; a previous run there is
            replaced).
        verbose: 0 silent, 1 progress bar and summary, 2 one line per epoch.
        **overrides: ``PretrainConfig`` fields to change (e.g. ``depth=2``).

    Returns:
        ``{"backend", "probe_accuracy_pretrained", "probe_accuracy_random_init",
        "pretrain_seconds", "total_seconds", "final_loss", "loss_plot", "output_dir"}``.
    """
    import keras
    from sklearn.model_selection import train_test_split

    from keras_jepa.data import load_digits
    from keras_jepa.models.jepa.recipes import build_encoder, get_config
    from keras_jepa.programs.pretrain import pretrain

    start = time.time()
    config = get_config(config)
    if overrides:
        config = config.replace(**overrides)
    output_dir = os.path.abspath(output_dir or "keras_jepa_demo_digits")

    def say(msg):
        if verbose:
            print(msg, flush=True)

    images, labels = load_digits(image_size=config.image_size)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.25, stratify=labels, random_state=seed
    )
    say(f"keras_jepa demo on backend '{keras.backend.backend()}': I-JEPA pretraining on the "
        f"scikit-learn digits, then a linear probe")
    say(f"  data: {len(labels)} images at {config.image_size}x{config.image_size}; "
        f"{len(train_idx)} train (pretraining, no labels) / {len(test_idx)} held-out test")

    # The random-init baseline: same architecture, same seed as the run's initial weights.
    keras.utils.set_random_seed(seed)
    random_encoder = build_encoder(config)
    random_features = encoder_features(random_encoder, images)
    say(f"  encoder: ViT width {config.hidden_dim}, depth {config.depth}, patch "
        f"{config.patch_size} ({random_encoder.count_params():,} parameters); predictor "
        f"{config.predictor_dim}x{config.predictor_depth}")

    # A demo run always starts fresh: a previous run in the same folder is replaced.
    result = pretrain(config, images[train_idx], epochs=epochs, batch_size=batch_size,
                      output_dir=output_dir, seed=seed, verbose=verbose, overwrite=True)
    features = encoder_features(result["encoder"], images)

    def probe(x):
        return linear_probe(x[train_idx], labels[train_idx], x[test_idx], labels[test_idx])

    pretrained_acc = probe(features)
    random_acc = probe(random_features)
    total = time.time() - start
    loss = result["history"].get("loss", [float("nan")])
    say("")
    say(f"  pretraining loss: {loss[0]:.4f} (epoch 1) -> {loss[-1]:.4f} (epoch {len(loss)}); "
        f"{result['seconds']:.0f} s")
    say(f"  linear probe, I-JEPA pretrained target encoder: {100 * pretrained_acc:.1f}% "
        f"held-out accuracy")
    say(f"  linear probe, same encoder at random init:      {100 * random_acc:.1f}% "
        f"held-out accuracy")
    say(f"  chance: {100 / len(np.unique(labels)):.1f}%;  loss curve: {result['plot_path']}")
    say(f"  total time {total:.0f} s; logs, checkpoints and encoder preset: {output_dir}")
    return {
        "backend": keras.backend.backend(),
        "probe_accuracy_pretrained": pretrained_acc,
        "probe_accuracy_random_init": random_acc,
        "pretrain_seconds": result["seconds"],
        "total_seconds": total,
        "final_loss": loss[-1],
        "loss_plot": result["plot_path"],
        "output_dir": output_dir,
    }
