"""Times the official I-JEPA PyTorch training step on the same masks and sizes as
``bench_step.py``, so the two can be compared on one machine in one run.

    python benchmarks/official_step.py --ijepa /path/to/ijepa --size tiny --image-size 96 \\
        --patch-size 16 --predictor-dim 96 --predictor-depth 4 --batch 16

``--ijepa`` is a checkout of github.com/facebookresearch/ijepa (the folder holding ``src``);
nothing from it ships with keras_jepa. Its ``src/models/vision_transformer.py`` imports
``timm`` only for ``drop_path`` (unused at rate 0); ``--stubs`` adds a folder to
``sys.path`` first, for machines without timm.

The step is the one of the official ``train.py``: target encoder forward without gradient,
layer norm, target gather; context encoder on the context masks; one predictor call over
all targets; smooth-L1; backward; AdamW over the official parameter groups; the EMA loop
over parameters. It runs in float32 on the CPU (or ``--device cuda`` with ``--bf16``).
The masks are keras_jepa's ``MultiBlockMask`` for the same seed as ``bench_step.py``, so
both scripts process the same token counts. Prints one JSON line like ``bench_step.py``.
"""

import argparse
import json
import statistics
import sys
import time

SIZES = {"tiny": "vit_tiny", "small": "vit_small", "base": "vit_base", "large": "vit_large",
         "huge": "vit_huge"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ijepa", required=True, help="checkout of the official repository")
    parser.add_argument("--stubs", default=None, help="folder put first on sys.path")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--predictor-dim", type=int, default=384)
    parser.add_argument("--predictor-depth", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the modules")
    args = parser.parse_args(argv)
    if args.stubs:
        sys.path.insert(0, args.stubs)
    sys.path.insert(0, args.ijepa)

    import copy

    import numpy as np
    import torch
    import torch.nn.functional as F

    from src.helper import init_model, init_opt
    from src.masks.utils import apply_masks
    from src.utils.tensors import repeat_interleave_batch

    from keras_jepa.masks import MultiBlockMask
    from keras_jepa.models.jepa.recipes import get_config

    torch.manual_seed(0)
    device = torch.device(args.device)
    encoder, predictor = init_model(device, patch_size=args.patch_size,
                                    model_name=SIZES[args.size], crop_size=args.image_size,
                                    pred_depth=args.predictor_depth,
                                    pred_emb_dim=args.predictor_dim)
    target_encoder = copy.deepcopy(encoder)
    for p in target_encoder.parameters():
        p.requires_grad = False
    optimizer, scaler, scheduler, wd_scheduler = init_opt(
        encoder, predictor, iterations_per_epoch=1000, start_lr=2e-4, ref_lr=1e-3,
        warmup=1, num_epochs=10, wd=0.04, final_wd=0.4, final_lr=1e-6,
        use_bfloat16=args.bf16)
    if args.compile:
        encoder, predictor, target_encoder = (torch.compile(m) for m in
                                              (encoder, predictor, target_encoder))

    grid = args.image_size // args.patch_size
    masks = get_config("ijepa_vith14_in1k").masks
    sampler = MultiBlockMask(grid_size=(grid, grid), seed=0, **masks)
    batch = sampler(args.batch, step=0)
    masks_enc = [torch.as_tensor(np.asarray(m), dtype=torch.long, device=device)
                 for m in batch["context_indices"]]
    masks_pred = [torch.as_tensor(np.asarray(m), dtype=torch.long, device=device)
                  for m in batch["target_indices"]]
    rng = np.random.default_rng(0)
    imgs = torch.as_tensor(rng.standard_normal(
        (args.batch, 3, args.image_size, args.image_size)).astype("float32"), device=device)

    def step():
        scheduler.step()
        wd_scheduler.step()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
            with torch.no_grad():
                h = target_encoder(imgs)
                h = F.layer_norm(h, (h.size(-1),))
                h = apply_masks(h, masks_pred)
                h = repeat_interleave_batch(h, len(imgs), repeat=len(masks_enc))
            z = encoder(imgs, masks_enc)
            z = predictor(z, masks_enc, masks_pred)
            loss = F.smooth_l1_loss(z, h)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            m = 0.996
            for q, k in zip(encoder.parameters(), target_encoder.parameters()):
                k.data.mul_(m).add_((1.0 - m) * q.detach().data)
        return float(loss)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    step()
    sync()
    compile_s = time.perf_counter() - start
    for _ in range(max(args.warmup - 1, 0)):
        step()
    sync()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    print(json.dumps({
        "model": "ijepa-official", "size": args.size, "input": str(args.image_size),
        "patch": args.patch_size,
        "predictor": f"{args.predictor_depth}x{args.predictor_dim}", "batch": args.batch,
        "precision": "bf16-autocast" if args.bf16 else "float32", "device": args.device,
        "threads": torch.get_num_threads(), "compile": args.compile,
        "samples_per_s": round(args.batch / step_s, 2), "step_ms": round(step_s * 1e3, 2),
        "compile_s": round(compile_s, 2), "steps": args.steps, "warmup": args.warmup,
        "torch": torch.__version__,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
