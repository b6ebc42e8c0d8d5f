"""Times the JEPA training step (or the encoder forward) on the active Keras backend.

    KERAS_BACKEND=jax python benchmarks/bench_step.py --model ijepa --size tiny \\
        --image-size 96 --patch-size 16 --batch 16 --predictor-dim 96 --predictor-depth 4

Prints one JSON line: samples/s (median over ``--steps`` steps after ``--warmup`` steps),
achieved TFLOP/s, peak accelerator memory, compile time (the first step), and the setup.

FLOP count (analytic, multiply-adds counted as 2): per transformer block on ``n`` tokens of
width ``d`` with MLP width ``h``: ``2n(4d^2 + 2dh) + 4n^2 d`` (qkv, proj, MLP, and the two
attention matmuls); the patch embedding ``2 n (C t p^2) d``; the predictor's input and output
projections. A training step counts 3x (forward + backward) the context-encoder and
predictor forwards over the masked token counts, plus 1x the target-encoder forward on all
tokens (it has no backward). The EMA and optimizer updates are not counted.

The step is the compiled ``model.train_on_batch`` of ``IJEPA`` / ``VJEPA`` with the official
masks (static token budgets), AdamW with the official weight-decay exclusions, and the EMA of
the target encoder inside the step; the batch is random data fixed before timing.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def block_flops(n, d, h):
    return 2 * n * (4 * d * d + 2 * d * h) + 4 * n * n * d


def encoder_flops(n, config, embed=True):
    d, h = config.hidden_dim, int(config.hidden_dim * config.mlp_ratio)
    tubelet = config.tubelet_size if config.kind == "video" else 1
    flops = config.depth * block_flops(n, d, h)
    if embed:
        flops += 2 * n * 3 * tubelet * config.patch_size ** 2 * d
    return flops


def predictor_flops(nc, nt, config):
    dp, d = config.predictor_dim, config.hidden_dim
    return (2 * nc * d * dp + config.predictor_depth * block_flops(nc + nt, dp, 4 * dp)
            + 2 * nt * dp * d)


def step_flops(config, sampler, batch):
    """Analytic FLOPs of one training step (see the module docstring)."""
    num_tokens = sampler.num_tokens
    contexts = list(sampler.num_context_tokens) if config.kind == "video" else [
        sampler.num_context_tokens] * config.masks.get("nenc", 1)
    targets = list(sampler.num_target_tokens) if config.kind == "video" else [
        sampler.num_target_tokens] * config.masks.get("npred", 4)
    trained = 0
    if config.kind == "video":
        for kc, kt in zip(contexts, targets):
            trained += encoder_flops(kc, config) + predictor_flops(kc, kt, config)
    else:
        for kc in contexts:
            trained += encoder_flops(kc, config)
            for kt in targets:
                trained += predictor_flops(kc, kt, config)
    return batch * (3 * trained + encoder_flops(num_tokens, config))


def forward_flops(config, batch):
    grid = config.image_size // config.patch_size
    n = grid * grid
    if config.kind == "video":
        n *= config.num_frames // config.tubelet_size
    return batch * encoder_flops(n, config)


SIZES = {
    "tiny": dict(hidden_dim=192, depth=12, num_heads=3),
    "small": dict(hidden_dim=384, depth=12, num_heads=6),
    "base": dict(hidden_dim=768, depth=12, num_heads=12),
    "large": dict(hidden_dim=1024, depth=24, num_heads=16),
    "huge": dict(hidden_dim=1280, depth=32, num_heads=16),
}


def make_config(args):
    from keras_jepa.models.jepa.recipes import get_config

    base = "ijepa_vith14_in1k" if args.model == "ijepa" else (
        "vjepa2_vitl16" if args.rope else "vjepa_vitl16")
    overrides = dict(SIZES[args.size], image_size=args.image_size, patch_size=args.patch_size,
                     predictor_dim=args.predictor_dim, predictor_depth=args.predictor_depth)
    if args.model == "vjepa":
        overrides.update(num_frames=args.frames)
    return get_config(base).replace(**overrides)


def build(args, config):
    import keras

    from keras_jepa.masks import MultiBlockMask, MultiBlockMask3D
    from keras_jepa.models import IJEPA, VJEPA, VisionTransformer
    from keras_jepa.models.jepa.recipes import build_optimizer

    kwargs = dict(image_size=config.image_size, patch_size=config.patch_size,
                  hidden_dim=config.hidden_dim, depth=config.depth,
                  num_heads=config.num_heads, mlp_ratio=config.mlp_ratio,
                  position_embedding=config.position_embedding,
                  sincos_order=config.sincos_order, uniform_power=config.uniform_power,
                  flash_attention=args.flash_attention)
    grid = config.image_size // config.patch_size
    if config.kind == "video":
        kwargs.update(num_frames=config.num_frames, tubelet_size=config.tubelet_size)
        sampler = MultiBlockMask3D(grid_size=(config.num_frames // config.tubelet_size,
                                              grid, grid), configs=config.masks, seed=0)
    else:
        sampler = MultiBlockMask(grid_size=(grid, grid), seed=0, **config.masks)
    encoder = VisionTransformer(**kwargs)
    common = dict(predictor_dim=config.predictor_dim, predictor_depth=config.predictor_depth,
                  predictor_heads=config.predictor_heads, ema_momentum=(0.996, 1.0),
                  ema_steps=10_000)
    if config.kind == "video":
        model = VJEPA(encoder, num_mask_tokens=config.num_mask_tokens, **common)
    else:
        model = IJEPA(encoder, **common)
    model.compile(optimizer=build_optimizer(config, total_steps=10_000, warmup_steps=100),
                  jit_compile=True if keras.backend.backend() != "torch" else "auto")
    return model, encoder, sampler


def batch_data(config, sampler, batch, rng):
    import numpy as np

    if config.kind == "video":
        x = rng.standard_normal((batch, config.num_frames, config.image_size,
                                 config.image_size, 3)).astype("float32")
        key = "videos"
    else:
        x = rng.standard_normal((batch, config.image_size, config.image_size, 3)).astype(
            "float32")
        key = "images"
    return {key: x, **sampler(batch, step=0)}, x


def timed(fn, steps, warmup):
    start = time.perf_counter()
    fn()
    compile_s = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return compile_s, statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["ijepa", "vjepa"], default="ijepa")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16, help="video only")
    parser.add_argument("--rope", action="store_true", help="video: V-JEPA 2 (RoPE)")
    parser.add_argument("--predictor-dim", type=int, default=384)
    parser.add_argument("--predictor-depth", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_bfloat16", "bfloat16"])
    parser.add_argument("--flash-attention", default=None, choices=[None, "true", "false"],
                        type=lambda s: None if s is None else s)
    parser.add_argument("--mode", choices=["train", "forward"], default="train")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's own)")
    args = parser.parse_args(argv)
    if args.flash_attention is not None:
        args.flash_attention = args.flash_attention == "true"

    import keras
    import numpy as np

    from keras_jepa.backend.memory import (
        device_description, peak_memory_bytes, reset_peak_memory,
    )

    if args.threads and keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(args.threads)
    keras.config.set_dtype_policy(args.precision)
    config = make_config(args)
    model, encoder, sampler = build(args, config)
    rng = np.random.default_rng(0)
    batch, x = batch_data(config, sampler, args.batch, rng)
    reset_peak_memory()
    if args.mode == "train":
        compile_s, step_s = timed(lambda: model.train_on_batch(batch), args.steps, args.warmup)
        flops = step_flops(config, sampler, args.batch)
    else:
        compile_s, step_s = timed(lambda: encoder.predict_on_batch(x), args.steps,
                                  args.warmup)
        flops = forward_flops(config, args.batch)
    peak = peak_memory_bytes()
    from keras_jepa.version import __version__

    row = {
        "model": args.model + ("2" if args.rope else ""), "size": args.size,
        "input": (f"{config.num_frames}x{config.image_size}" if config.kind == "video"
                  else str(config.image_size)),
        "patch": config.patch_size, "predictor": f"{config.predictor_depth}x{config.predictor_dim}",
        "batch": args.batch, "precision": args.precision, "mode": args.mode,
        "backend": keras.backend.backend(), "device": device_description(),
        "samples_per_s": round(args.batch / step_s, 2), "step_ms": round(step_s * 1e3, 2),
        "tflops": round(flops / step_s / 1e12, 4), "step_gflop": round(flops / 1e9, 3),
        "peak_memory_gib": None if peak is None else round(peak / 2**30, 2),
        "compile_s": round(compile_s, 2), "steps": args.steps, "warmup": args.warmup,
        "keras": keras.__version__, "keras_jepa": __version__,
    }
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
