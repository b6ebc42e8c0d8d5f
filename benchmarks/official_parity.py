"""Checks converted checkpoints against the official PyTorch modules themselves.

The official repositories are not part of keras_jepa (their license differs); point this
script at your clones. For each family it builds a small model with the official code
(ViT-Tiny, random weights perturbed away from their init), saves a checkpoint exactly as the
official training loop does (``encoder``, ``target_encoder``, ``predictor`` with the DDP /
wrapper prefixes, plus optimizer state) and the official training YAML, converts it with
``keras-jepa convert`` on each Keras backend, and compares the encoder, target encoder,
masked context encoder and predictor outputs (and, with ``--probes``, the attentive
probes of V-JEPA and V-JEPA 2).

    python benchmarks/official_parity.py --ijepa ~/src/ijepa --jepa ~/src/jepa \\
        --vjepa2 ~/src/vjepa2 --backends jax,torch,tensorflow --probes

Needs torch (and, for V-JEPA 2's code, timm and einops, which it imports). Prints one
line per (backend, family) with the max abs differences; exits non-zero above ``--atol``.
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHECK = r"""
import json, sys, numpy as np, keras
from keras_jepa.applications import IJEPA, VJEPA
from keras_jepa.evaluation.attentive_probe import AttentiveClassifier
from keras_jepa.presets.storage import load_preset
out, families, probes = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
c = lambda t: keras.ops.convert_to_numpy(t)
for fam in families:
    r = np.load(f"{out}/{fam}_ref.npz")
    model = (IJEPA if fam == "ijepa" else VJEPA).from_preset(f"{out}/{fam}_preset")
    z = model.encoder(r["x"], token_indices=r["ctx"].astype("int32"))
    p = model.predictor(z, r["ctx"].astype("int32"), r["tgt_ids"].astype("int32"),
                        mask_index=0 if fam == "ijepa" else 1)
    diffs = {"encoder": np.abs(c(model.encoder(r["x"])) - r["enc"]).max(),
             "target_encoder": np.abs(c(model.target_encoder(r["x"])) - r["tgt"]).max(),
             "masked_encoder": np.abs(c(z) - r["z"]).max(),
             "predictor": np.abs(c(p) - r["pred"]).max()}
    print("RESULT", json.dumps({"backend": keras.backend.backend(), "family": fam,
                                **{k: float(v) for k, v in diffs.items()}}))
for fam in probes:
    r = np.load(f"{out}/{fam}_probe_ref.npz")
    probe = load_preset(AttentiveClassifier, f"{out}/{fam}_probe_preset")
    print("RESULT", json.dumps({"backend": keras.backend.backend(), "family": fam + "_probe",
                                "probe": float(np.abs(c(probe(r["x"])) - r["y"]).max())}))
"""


def _import_official(path):
    for name in [m for m in sys.modules if m == "src" or m.startswith("src.")]:
        del sys.modules[name]
    sys.path.insert(0, os.path.abspath(os.path.expanduser(path)))


def _perturb(torch, module, seed, scale=0.05):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in module.named_parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale)
    return module.eval()


def build_official(torch, family, path, out, rng):
    """Official modules, checkpoint, YAML and reference outputs for one family."""
    _import_official(path)
    if family == "ijepa":
        from src.models.vision_transformer import vit_predictor, vit_tiny

        enc = vit_tiny(patch_size=8, img_size=[32])
        pred = vit_predictor(num_patches=enc.patch_embed.num_patches, embed_dim=192,
                             predictor_embed_dim=96, depth=2, num_heads=3)
        config = {"meta": {"model_name": "vit_tiny", "pred_depth": 2, "pred_emb_dim": 96},
                  "data": {"crop_size": 32}, "mask": {"patch_size": 8}}
        x, n, prefix = torch.randn(2, 3, 32, 32), 16, "module."
    else:
        from src.models.predictor import vit_predictor
        from src.models.vision_transformer import vit_tiny

        rope = family == "vjepa2"
        size = (32, 32) if rope else 32
        enc = vit_tiny(patch_size=8, img_size=size, num_frames=4, tubelet_size=2,
                       uniform_power=not rope, **({"use_rope": True} if rope else {}))
        pred = vit_predictor(img_size=size, patch_size=8, num_frames=4, tubelet_size=2,
                             embed_dim=192, predictor_embed_dim=96, depth=2,
                             num_heads=4 if rope else 3, uniform_power=not rope,
                             use_mask_tokens=True, num_mask_tokens=2,
                             zero_init_mask_tokens=True, **({"use_rope": True} if rope else {}))
        model = {"model_name": "vit_tiny", "pred_depth": 2, "pred_embed_dim": 96,
                 "uniform_power": not rope}
        data = {"tubelet_size": 2, "crop_size": 32, "patch_size": 8}
        if rope:
            model.update(use_rope=True, pred_num_heads=4)
            data["dataset_fpcs"] = [4]
        else:
            data["num_frames"] = 4
        config = {"data": data, "mask": [{}, {}], "model": model}
        x, n, prefix = torch.randn(2, 3, 4, 32, 32), 32, "module.backbone."
    _perturb(torch, enc, 1)
    _perturb(torch, pred, 2)
    with torch.no_grad():
        for name, param in pred.named_parameters():
            if "mask_token" in name:
                param.copy_(torch.randn(param.shape) * 0.5)
    tgt = _perturb(torch, copy.deepcopy(enc), 3)
    ctx = np.stack([np.sort(rng.permutation(n)[: n // 2]) for _ in range(2)])
    tgt_ids = np.stack([np.setdiff1d(np.arange(n), c) for c in ctx])
    ctx_t, tgt_t = torch.from_numpy(ctx).long(), torch.from_numpy(tgt_ids).long()
    with torch.no_grad():
        h_enc, h_tgt = enc(x), tgt(x)
        z = enc(x, masks=[ctx_t])
        if family == "ijepa":
            p = pred(z, [ctx_t], [tgt_t])
        elif family == "jepa":
            p = pred(z, None, [ctx_t], [tgt_t], mask_index=1)
        else:
            p = pred(z, [ctx_t], [tgt_t], mask_index=1)
    checkpoint = {
        "encoder": {prefix + k: v for k, v in enc.state_dict().items()},
        "target_encoder": {prefix + k: v for k, v in tgt.state_dict().items()},
        "predictor": {prefix + k: v for k, v in pred.state_dict().items()},
        "opt": {"state": {}, "param_groups": [{"lr": 1e-3}]}, "epoch": 3, "loss": 0.5,
    }
    torch.save(checkpoint, os.path.join(out, f"{family}.pth.tar"))
    import yaml

    with open(os.path.join(out, f"{family}.yaml"), "w") as f:
        yaml.safe_dump(config, f)
    xn = x.numpy()
    xn = xn.transpose(0, 2, 3, 1) if xn.ndim == 4 else xn.transpose(0, 2, 3, 4, 1)
    np.savez(os.path.join(out, f"{family}_ref.npz"), x=xn, enc=h_enc.numpy(),
             tgt=h_tgt.numpy(), z=z.numpy(), pred=p.numpy(), ctx=ctx, tgt_ids=tgt_ids)


def build_official_probe(torch, family, path, out):
    _import_official(path)
    from src.models.attentive_pooler import AttentiveClassifier

    depth = 1 if family == "jepa" else 4
    clf = _perturb(torch, AttentiveClassifier(embed_dim=64, num_heads=4, depth=depth,
                                              num_classes=7), 5, scale=0.1)
    x = torch.randn(3, 11, 64)
    with torch.no_grad():
        y = clf(x)
    state = {"module." + k: v for k, v in clf.state_dict().items()}
    checkpoint = {"classifier": state} if family == "jepa" else {"classifiers": [state]}
    torch.save(checkpoint, os.path.join(out, f"{family}_probe.pth.tar"))
    np.savez(os.path.join(out, f"{family}_probe_ref.npz"), x=x.numpy(), y=y.numpy())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ijepa", help="clone of facebookresearch/ijepa")
    parser.add_argument("--jepa", help="clone of facebookresearch/jepa (V-JEPA)")
    parser.add_argument("--vjepa2", help="clone of facebookresearch/vjepa2")
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    parser.add_argument("--probes", action="store_true", help="also check attentive probes")
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    out = tempfile.mkdtemp(prefix="official_parity_")
    families = [f for f in ("ijepa", "jepa", "vjepa2") if getattr(args, f)]
    probes = [f for f in ("jepa", "vjepa2") if args.probes and getattr(args, f)]
    for family in families:
        build_official(torch, family, getattr(args, family), out, rng)
    for family in probes:
        build_official_probe(torch, family, getattr(args, family), out)
    worst = 0.0
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        for family in families:
            subprocess.run([sys.executable, "-m", "keras_jepa.cli", "convert",
                            f"{out}/{family}.pth.tar", f"{out}/{family}_preset", "--arch",
                            f"{out}/{family}.yaml"], env=env, check=True,
                           capture_output=True)
        for family in probes:
            subprocess.run([sys.executable, "-m", "keras_jepa.cli", "convert",
                            f"{out}/{family}_probe.pth.tar", f"{out}/{family}_probe_preset",
                            "--probe", "--num-heads", "4"], env=env, check=True,
                           capture_output=True)
        result = subprocess.run(
            [sys.executable, "-c", CHECK, out, json.dumps(families), json.dumps(probes)],
            env=env, capture_output=True, text=True, check=True)
        for line in result.stdout.splitlines():
            if line.startswith("RESULT "):
                row = json.loads(line[len("RESULT "):])
                diffs = {k: v for k, v in row.items() if k not in ("backend", "family")}
                worst = max(worst, *diffs.values())
                print(f"{row['backend']:<11} {row['family']:<13} " + "  ".join(
                    f"{k} {v:.2e}" for k, v in diffs.items()))
    print(f"worst max abs diff {worst:.2e} (atol {args.atol})")
    return 0 if worst <= args.atol else 1


if __name__ == "__main__":
    sys.exit(main())
