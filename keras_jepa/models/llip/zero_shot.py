"""Zero-shot classification and image-text retrieval for SigLIP, CLIP and Llip.

Every image is encoded once (its ``K`` visual tokens); each candidate text then conditions
the image representation through the model's ``scores`` (for Llip, the caption-conditioned
mixing of the same ``K`` tokens; for SigLIP/CLIP a plain dot product), so a ``(N_images,
N_texts)`` score matrix costs one vision pass per image and one mixing per pair.
"""

import numpy as np
from keras import ops


def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def encode_images(model, images, batch_size=256):
    """The visual tokens of every image, ``(N, K, D)`` (computed once per image)."""
    images = np.asarray(images, "float32")
    return np.concatenate([
        ops.convert_to_numpy(ops.cast(model.encode_images(images[s]), "float32"))
        for s in _batches(len(images), batch_size)
    ])


def encode_texts(model, token_ids, batch_size=1024):
    """L2-normalised text embeddings, ``(T, E)`` float32."""
    token_ids = np.asarray(token_ids, "int32")
    return np.concatenate([
        ops.convert_to_numpy(model.encode_texts(token_ids[s]))
        for s in _batches(len(token_ids), batch_size)
    ])


def image_text_scores(model, images=None, token_ids=None, image_tokens=None,
                      text_embeddings=None, batch_size=256):
    """Similarity of every image, conditioned on every text, with that text: ``(N, T)``.

    Pass ``images`` and ``token_ids``, or precomputed ``image_tokens``
    (:func:`encode_images`) and ``text_embeddings`` (:func:`encode_texts`) to reuse them.

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import Llip, TextEncoder, VisionTransformer
    >>> vit = VisionTransformer(image_size=16, patch_size=8, hidden_dim=16, depth=1, num_heads=2)
    >>> text = TextEncoder(vocabulary_size=10, max_length=4, hidden_dim=16, depth=1, num_heads=2)
    >>> model = Llip(vit, text, num_mixture_tokens=2, mixing_heads=2)
    >>> scores = image_text_scores(model, np.zeros((3, 16, 16, 3)), np.ones((5, 4), "int32"))
    >>> scores.shape
    (3, 5)
    """
    if image_tokens is None:
        image_tokens = encode_images(model, images, batch_size)
    if text_embeddings is None:
        text_embeddings = encode_texts(model, token_ids)
    return np.concatenate([
        ops.convert_to_numpy(model.scores(image_tokens[s], text_embeddings))
        for s in _batches(len(image_tokens), batch_size)
    ])


def retrieval_metrics(scores, text_to_image, ks=(1, 5)):
    """Recall@k both ways from a ``(N_images, N_texts)`` score matrix.

    Args:
        scores: ``(N, T)``; higher is more similar.
        text_to_image: ``(T,)`` index of each text's image (an image may own several).
        ks: the ``k`` values.

    Returns:
        ``{"text_to_image_r@k": ..., "image_to_text_r@k": ...}``: the fraction of texts
        whose image is among the top ``k`` images, and of images with at least one of their
        texts among the top ``k`` texts.

    Example:

    >>> import numpy as np
    >>> scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.7]])
    >>> m = retrieval_metrics(scores, np.array([0, 1, 1]), ks=(1,))
    >>> m["text_to_image_r@1"], m["image_to_text_r@1"]
    (1.0, 1.0)
    """
    scores = np.asarray(scores, "float64")
    owners = np.asarray(text_to_image)
    if scores.ndim != 2 or owners.shape != (scores.shape[1],):
        raise ValueError(
            f"scores must be (images, texts) and text_to_image one index per text; got "
            f"{scores.shape} and {owners.shape}."
        )
    # Rank of the true image for each text: images scoring strictly higher, +1.
    true = scores[owners, np.arange(scores.shape[1])]
    text_rank = (scores > true[None]).sum(axis=0) + 1
    # Best rank over each image's texts among all texts.
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None], axis=1)
    mine = owners[None] == np.arange(scores.shape[0])[:, None]
    hit_rank = np.where(mine, ranks + 1, scores.shape[1] + 1).min(axis=1)
    out = {}
    for k in ks:
        out[f"text_to_image_r@{k}"] = float(np.mean(text_rank <= k))
        out[f"image_to_text_r@{k}"] = float(np.mean(hit_rank <= k))
    return out


def zero_shot_classify(model, images, class_token_ids, batch_size=256):
    """Class scores ``(N, C)``: each image conditioned on each class prompt.

    ``class_token_ids``: ``(C, L)`` one prompt per class, or ``(C, P, L)`` ``P`` prompts
    per class (the scores are averaged over prompts).
    """
    ids = np.asarray(class_token_ids, "int32")
    prompts = ids.reshape(-1, ids.shape[-1])
    scores = image_text_scores(model, images, prompts, batch_size=batch_size)
    if ids.ndim == 3:
        scores = scores.reshape(len(scores), ids.shape[0], ids.shape[1]).mean(axis=2)
    return scores


def zero_shot_accuracy(model, images, labels, class_token_ids, batch_size=256):
    """Top-1 accuracy of :func:`zero_shot_classify` against integer ``labels``."""
    scores = zero_shot_classify(model, images, class_token_ids, batch_size)
    return float(np.mean(np.argmax(scores, axis=1) == np.asarray(labels)))
