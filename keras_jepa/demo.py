"""``keras-jepa demo``: the toolkit's main job on data that ships with the install.

Today the demo extracts VisionTransformer features of the scikit-learn digits (1,797 images,
upsampled to 32x32 RGB) with a randomly initialised encoder and fits a linear probe
(logistic regression) on them, next to a probe on raw pixels. The encoder is not
pretrained yet, so its features are random projections: the numbers show that the
pipeline works end to end on this backend, not what pretraining buys.
"""

import time

import numpy as np


def run(image_size=32, patch_size=8, depth=6, seed=0, batch_size=128, verbose=1):
    """Runs the demo and returns a dict of results (accuracies, timings, sizes)."""
    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from keras_jepa.data import load_digits
    from keras_jepa.models import VisionTransformer

    def say(msg):
        if verbose:
            print(msg, flush=True)

    keras.utils.set_random_seed(seed)
    images, labels = load_digits(image_size=image_size)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.25, stratify=labels, random_state=seed
    )
    encoder = VisionTransformer.from_size(
        "tiny", image_size=image_size, patch_size=patch_size, depth=depth,
        sincos_order="wh",
    )
    say(
        f"keras_jepa demo on backend '{keras.backend.backend()}': VisionTransformer "
        f"features of scikit-learn digits, then a linear probe"
    )
    say(
        f"  data: {len(labels)} images at {image_size}x{image_size}, "
        f"{len(train_idx)} train / {len(test_idx)} test (stratified, seed {seed})"
    )
    say(
        f"  encoder: ViT-tiny/{patch_size}, depth {depth}, width {encoder.hidden_dim}, "
        f"{encoder.count_params():,} parameters, random init (not pretrained yet)"
    )
    start = time.time()
    tokens = encoder.predict(images, batch_size=batch_size, verbose=verbose)
    seconds = time.time() - start
    features = tokens.mean(axis=1)
    say(f"  features: {features.shape} in {seconds:.1f} s ({len(images) / seconds:.0f} images/s, incl. compile)")

    def probe(x):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
        clf.fit(x[train_idx], labels[train_idx])
        return float(clf.score(x[test_idx], labels[test_idx]))

    vit_acc = probe(features)
    pixel_acc = probe(images.reshape(len(images), -1))
    say(f"  linear probe, ViT features (random init): {100 * vit_acc:.1f}% test accuracy")
    say(f"  linear probe, raw pixels:                 {100 * pixel_acc:.1f}% test accuracy")
    say(f"  chance: {100 / len(np.unique(labels)):.1f}%")
    return {
        "backend": keras.backend.backend(),
        "probe_accuracy_vit_random_init": vit_acc,
        "probe_accuracy_pixels": pixel_acc,
        "feature_seconds": seconds,
        "num_images": int(len(images)),
    }
