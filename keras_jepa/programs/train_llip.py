"""The Llip training program: Llip against SigLIP (and optionally CLIP) with the same towers
and budget, then zero-shot retrieval both ways. ``applications/train_llip.py`` and
``keras-jepa train-llip`` run ``main``.

Data:

- ``--data synthetic`` (default): :func:`~keras_jepa.models.llip.data.make_caption_scenes`
  scenes with several objects and captions that each name a subset of them; a held-out set
  of scenes is used for retrieval (caption->image and image->caption recall@1/5).
- ``--data captions.csv|captions.jsonl`` (+ ``--image-root``) or ``--data shard.tar``
  (webdataset layout, several shards comma-separated): real image-text pairs; the last
  ``--eval-fraction`` of the records is held out for retrieval.

Every model gets the same ViT and text-transformer size, optimiser (AdamW, warmup then
cosine decay), batch size and number of steps. Llip's extra cost is its mixing
cross-attention (4 small projections). The program prints one line per model::

    siglip  caption->image R@1 <r>  image->caption R@1 <r>  ...  (<train seconds>)

Measured (JAX, one core of a 2-core CPU shared with other jobs). Default settings: 8192
train scenes, 1024 held-out eval scenes (4096 captions), at least 1200 steps of batch 64
(rounded up to whole epochs: 10 epochs, 1280 steps, so each scene is seen about 10 times),
AdamW lr 1e-3 (10% warmup, cosine decay), ViT 64x2 patch 8 on 32 px, text 64x1, Llip K=8,
4 mixing heads, tau=1. Recall@1 caption->image / image->caption (chance about 0.001):

======  ===============  ===============
seed    SigLIP           Llip
======  ===============  ===============
0       0.035 / 0.014    0.040 / 0.049
1       0.039 / 0.022    0.044 / 0.038
2       0.047 / 0.020    0.052 / 0.055
3       0.033 / 0.016    0.046 / 0.028
4       0.038 / 0.021    0.042 / 0.043
mean    0.038 / 0.019    0.045 / 0.043
======  ===============  ===============

Llip beats SigLIP in both directions on all five seeds; the image->caption gap is large
(Llip's recall@5 is also higher on every seed: mean 0.19 / 0.19 against 0.14 / 0.08), the
caption->image gap is small (+0.004 to +0.013). Training took SigLIP 95-168 s and Llip
158-257 s per run (the spread is the load of the other jobs); a Llip step costs about 1.5-2x
a SigLIP step (K=8 extra ViT tokens and the pairwise mixing). On the first 256 eval scenes
alone Llip also wins every seed (mean 0.148 / 0.161 against 0.111 / 0.061).

How the defaults were chosen (seed 0, 1024 eval scenes, the same budget and grid for both
models; the shared learning rate is SigLIP's best, not Llip's):

- fresh data, 19200 scenes seen twice in 600 steps at lr 2e-3: SigLIP 0.014 / 0.009,
  Llip 0.012 / 0.004 (both have barely left chance: 600 steps are too few);
- 8192 scenes, 1280 steps, lr 5e-4: SigLIP 0.033 / 0.014, Llip 0.038 / 0.034;
- lr 1e-3: SigLIP 0.035 / 0.014, Llip 0.040 / 0.049;
- lr 2e-3: SigLIP 0.015 / 0.014, Llip 0.050 / 0.037.

Llip's K, mixing heads and tau were not tuned (K=8, 4 heads, tau=1 throughout). The
appended-token init std of each model (SigLIP/CLIP 0.02, Llip 1) is the best of the grid
{1, 0.2, 0.02} run at the earlier defaults (2048 train / 256 eval scenes, 608 steps, lr
2e-3) and was not re-run. Those earlier defaults were too small and too short to separate
the models: Llip led on the mean of seeds 0-2 (0.072 / 0.076 against 0.053 / 0.053 on 256
eval images) but lost seed 0 (0.042 / 0.039 against 0.063 / 0.047).

The program also writes ``results.json`` (and the trained models, ``<name>.keras``) to
``--output``.
"""

import json
import os
import time

import keras
import numpy as np

from keras_jepa.models.llip.data import (
    ImageCaptionArrays,
    ImageTextDataset,
    flatten_captions,
    make_caption_scenes,
)
from keras_jepa.models.llip.zero_shot import image_text_scores, retrieval_metrics
from keras_jepa.models.llip.model import CLIP, Llip, SigLIP
from keras_jepa.models.llip.text_encoder import TextEncoder
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from keras_jepa.models.llip.tokenizers import ByteTokenizer, WordTokenizer

MODELS = ("siglip", "llip", "clip", "llip_softmax")


def build_model(kind, tokenizer, image_size=32, patch_size=8, width=64, depth=2, heads=4,
                text_width=64, text_depth=1, num_mixture_tokens=8, mixing_heads=4,
                mixing_temperature=1.0, pair_chunk_size=256, token_init_std=None):
    """One of ``MODELS`` with the given (shared) tower sizes."""
    vit = VisionTransformer(image_size=image_size, patch_size=patch_size, hidden_dim=width,
                            depth=depth, num_heads=heads, name="image_encoder")
    text = TextEncoder(tokenizer.vocabulary_size, tokenizer.max_length, hidden_dim=text_width,
                       depth=text_depth, num_heads=max(1, text_width // 32),
                       name="text_encoder")
    if kind == "siglip":
        return SigLIP(vit, text, token_init_std=token_init_std, name="siglip")
    if kind == "clip":
        return CLIP(vit, text, token_init_std=token_init_std, name="clip")
    if kind in ("llip", "llip_softmax"):
        return Llip(vit, text, num_mixture_tokens=num_mixture_tokens, mixing_heads=mixing_heads,
                    mixing_temperature=mixing_temperature, pair_chunk_size=pair_chunk_size,
                    token_init_std=token_init_std,
                    loss="softmax" if kind == "llip_softmax" else "sigmoid", name=kind)
    raise ValueError(f"Unknown model {kind!r}; choose from {MODELS}.")


def load_data(data, seed=0, num_train=8192, num_eval=1024, image_size=32, max_length=16,
              image_root=None, eval_fraction=0.1, batch_size=64):
    """``(train dataset, eval images, eval captions (lists), tokenizer)``."""
    if data == "synthetic":
        train = make_caption_scenes(num_train, image_size=image_size, seed=seed)
        test = make_caption_scenes(num_eval, image_size=image_size, seed=seed + 1000)
        texts, _ = flatten_captions(train["captions"])
        tokenizer = WordTokenizer.from_texts(texts, max_length=max_length)
        dataset = ImageCaptionArrays(train["images"], train["captions"], tokenizer,
                                     batch_size=batch_size, seed=seed)
        return dataset, test["images"], test["captions"], tokenizer
    tokenizer = ByteTokenizer(max_length=max(max_length, 64))
    shards = [s for s in data.split(",") if s]
    if all(s.endswith(".tar") for s in shards):
        full = ImageTextDataset.from_webdataset(shards, tokenizer, batch_size,
                                                image_size=image_size, seed=seed)
    else:
        full = ImageTextDataset.from_captions_file(data, tokenizer, batch_size,
                                                   image_root=image_root,
                                                   image_size=image_size, seed=seed)
    n_eval = max(1, int(len(full.sources) * eval_fraction))
    records = list(zip(full.sources, full.captions))
    train = ImageTextDataset(records[:-n_eval], tokenizer, batch_size, image_size=image_size,
                             seed=seed)
    evaluation = ImageTextDataset(records[-n_eval:], tokenizer, 1, image_size=image_size,
                                  transform=None, shuffle=False)
    from keras_jepa.data.transforms import image_transform

    eval_transform = image_transform(image_size, training=False)
    images = np.stack([eval_transform(evaluation.read(p, None)) for p in evaluation.paths])
    return train, images.astype("float32"), evaluation.captions, tokenizer


def evaluate_retrieval(model, images, captions, tokenizer):
    """Recall@1/5 both ways over held-out images and all their captions."""
    texts, owners = flatten_captions(captions)
    scores = image_text_scores(model, images, tokenizer.encode(texts))
    return retrieval_metrics(scores, owners, ks=(1, 5))


def train_and_evaluate(kinds=("siglip", "llip"), data="synthetic", steps=1200, batch_size=64,
                       learning_rate=1e-3, weight_decay=0.05, seed=0, output=None,
                       verbose=2, num_train=8192, num_eval=1024, image_size=32,
                       image_root=None, **model_kwargs):
    """Trains every model in ``kinds`` with the same budget; returns ``{kind: metrics}``."""
    dataset, eval_images, eval_captions, tokenizer = load_data(
        data, seed=seed, num_train=num_train, num_eval=num_eval, image_size=image_size,
        image_root=image_root, batch_size=batch_size)
    epochs = max(1, -(-steps // len(dataset)))
    total = epochs * len(dataset)
    results = {}
    for kind in kinds:
        keras.utils.set_random_seed(seed)
        model = build_model(kind, tokenizer, image_size=image_size, **model_kwargs)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, total - total // 10, alpha=0.01, warmup_target=learning_rate,
            warmup_steps=total // 10)
        model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay))
        dataset.epoch = 0
        start = time.time()
        history = model.fit(dataset, epochs=epochs, verbose=verbose)
        train_time = time.time() - start
        metrics = evaluate_retrieval(model, eval_images, eval_captions, tokenizer)
        metrics.update(
            train_seconds=round(train_time, 1), steps=total,
            final_loss=float(history.history["loss"][-1]),
            parameters=int(model.count_params()),
        )
        for key in ("mixing_entropy", "tokens_used", "token_usage_max"):
            if key in history.history:
                metrics[key] = float(history.history[key][-1])
        results[kind] = metrics
        print(format_row(kind, metrics), flush=True)
        if output:
            os.makedirs(output, exist_ok=True)
            model.save(os.path.join(output, f"{kind}.keras"))
    if output:
        with open(os.path.join(output, "results.json"), "w") as f:
            json.dump({"backend": keras.backend.backend(), "data": data, "steps": total,
                       "batch_size": batch_size, "results": results}, f, indent=2)
    return results


def format_row(kind, m):
    extra = ""
    if "tokens_used" in m:
        extra = f"  tokens used {m['tokens_used']:.2f}  mixing entropy {m['mixing_entropy']:.2f}"
    return (f"{kind:<13} caption->image R@1 {m['text_to_image_r@1']:.3f}  "
            f"image->caption R@1 {m['image_to_text_r@1']:.3f}  "
            f"caption->image R@5 {m['text_to_image_r@5']:.3f}  "
            f"image->caption R@5 {m['image_to_text_r@5']:.3f}  "
            f"({m['train_seconds']:.0f} s, {m['parameters']} params){extra}")


def add_arguments(parser):
    """The ``train-llip`` options (shared by the CLI and applications/train_llip.py)."""
    parser.add_argument("--data", default="synthetic",
                        help="'synthetic', a captions CSV/JSONL, or comma-separated .tar shards")
    parser.add_argument("--image-root", default=None,
                        help="folder of the images named in the captions file")
    parser.add_argument("--models", default="siglip,llip",
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--steps", type=int, default=1200,
                        help="at least this many steps, rounded up to whole epochs")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="image-caption pairs per step (default 64)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="peak AdamW learning rate, after a 10%% warmup, then cosine "
                             "(default 1e-3)")
    parser.add_argument("--image-size", type=int, default=32,
                        help="image side in pixels (default 32)")
    parser.add_argument("--patch-size", type=int, default=8,
                        help="ViT patch size (default 8)")
    parser.add_argument("--width", type=int, default=64, help="ViT width")
    parser.add_argument("--depth", type=int, default=2, help="ViT depth")
    parser.add_argument("--text-width", type=int, default=64,
                        help="text transformer width (default 64)")
    parser.add_argument("--text-depth", type=int, default=1,
                        help="text transformer depth (default 1)")
    parser.add_argument("--mixture-tokens", type=int, default=8, help="Llip's K")
    parser.add_argument("--mixing-heads", type=int, default=4,
                        help="heads of Llip's mixing cross-attention (default 4)")
    parser.add_argument("--mixing-temperature", type=float, default=1.0,
                        help="softmax temperature of Llip's mixing weights (default 1.0)")
    parser.add_argument("--token-init-std", type=float, default=None,
                        help="init std of the appended tokens (default: each model's own, "
                             "0.02 for SigLIP/CLIP, 1 for Llip)")
    parser.add_argument("--num-train", type=int, default=8192, help="synthetic train scenes")
    parser.add_argument("--num-eval", type=int, default=1024, help="synthetic eval scenes")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the data and every model's weights (default 0)")
    parser.add_argument("--output", default=None, help="folder for results.json and models")
    return parser


def run_from_args(args):
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    for kind in kinds:
        if kind not in MODELS:
            raise ValueError(f"unknown model {kind!r} in --models; choose from "
                             f"{', '.join(MODELS)}.")
    print(f"backend {keras.backend.backend()}, data {args.data}, {args.steps} steps of "
          f"batch {args.batch_size}", flush=True)
    train_and_evaluate(
        kinds, data=args.data, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, seed=args.seed, output=args.output,
        num_train=args.num_train, num_eval=args.num_eval, image_size=args.image_size,
        image_root=args.image_root, patch_size=args.patch_size, width=args.width,
        depth=args.depth, text_width=args.text_width, text_depth=args.text_depth,
        num_mixture_tokens=args.mixture_tokens, mixing_heads=args.mixing_heads,
        mixing_temperature=args.mixing_temperature, token_init_std=args.token_init_std)
    return 0


def run(args):
    """Runs the program from parsed arguments (``keras-jepa train-llip``)."""
    return run_from_args(args)


def main(argv=None):
    """Entry point of ``applications/train_llip.py`` (errors as ``keras-jepa train-llip``)."""
    import sys

    from keras_jepa.programs.runner import script_main

    return script_main(sys.modules[__name__], argv, description=(
        "Train Llip and its SigLIP baseline; report zero-shot retrieval."))
