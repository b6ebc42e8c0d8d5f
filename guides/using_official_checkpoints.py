"""
Title: Using the official JEPA checkpoints
Author: keras_jepa contributors
Date created: 2026/11/26
Description: Load the released I-JEPA / V-JEPA / V-JEPA 2 models as presets, extract
    features, continue pretraining with `fit`, and convert a checkpoint you trained with
    the official PyTorch code.
Accelerator: None for this guide (it builds a tiny checkpoint itself); a GPU for the
    released models.
"""

"""
## Introduction

The released JEPA models are PyTorch checkpoints: a dictionary holding the context
`encoder`, the EMA `target_encoder` and the `predictor` (plus optimizer state). keras_jepa
converts them, tensor by tensor, into the same three modules in Keras, so you can use them
on JAX, PyTorch or TensorFlow:

* `keras_jepa.applications.VJEPA.from_preset("vjepa2_vitl16_256")` gives the full model;
* `keras_jepa.applications.VisionTransformer.from_preset("vjepa2_vitl16_256")` gives one
  encoder as a backbone (the target encoder by default, as the official probes use;
  `encoder="context"` gives the one torch.hub and Hugging Face load);
* `keras-jepa convert CHECKPOINT OUT --arch ARCH` converts a file into a preset folder.

The first `from_preset` of a built-in name downloads the file into
`$KERAS_HOME/keras_jepa/checkpoints/` and caches the converted preset next to it. Without a
network, the error message gives the URL and the path where to put the file by hand.

This guide runs offline: it writes a tiny checkpoint in the official V-JEPA 2 layout (as
the official training code saves it) and walks through every step with it. Set
`KERAS_JEPA_GUIDE_OFFICIAL=vjepa2_vitl16_256` (or another name) to also load a released
model.
"""

"""
## Setup
"""

import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_jepa.applications import (
    OFFICIAL_PRESETS, VJEPA, VisionTransformer, build_model_from_arch,
    export_official_state,
)
from keras_jepa.models.jepa.recipes import build_mask_sampler, get_config

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK") == "1"
keras.utils.set_random_seed(0)
work = tempfile.mkdtemp(prefix="keras_jepa_official_")
print("backend:", keras.backend.backend())

"""
## The released models

Every released checkpoint has a registry entry with its URL, its size, which modules it
holds and the preprocessing it expects (`keras-jepa presets` prints the same list).
"""

for name, entry in OFFICIAL_PRESETS.items():
    print(f"{name:<24} {entry['resolution']:>3}px  {entry['size']:<52} {entry['source']}")
print("\nV-JEPA 2 preprocessing:", OFFICIAL_PRESETS["vjepa2_vitl16_256"]["preprocessing"])

"""
## A checkpoint in the official layout

Here we stand in for the official training code: a tiny V-JEPA 2 model (RoPE encoder,
predictor with 10 mask tokens) whose weights are written exactly as the official code saves
them, under `module.backbone.` keys, with torch layouts, next to optimizer state. With your
own run, this is the `jepa-latest.pth.tar` (V-JEPA) or `e{epoch}.pth.tar` your training wrote,
and its YAML config.
"""

official_yaml = {
    "data": {"crop_size": 32, "patch_size": 8, "dataset_fpcs": [8], "tubelet_size": 2},
    "mask": [{"num_blocks": 8, "spatial_scale": [0.15, 0.15]},
             {"num_blocks": 2, "spatial_scale": [0.7, 0.7]}],
    "model": {"model_name": "vit_tiny", "pred_depth": 2, "pred_embed_dim": 96,
              "pred_num_heads": 4, "use_rope": True, "uniform_power": True},
    "optimization": {"ema": [0.99925, 0.99925], "lr": 5.25e-4, "start_lr": 1e-4,
                     "final_lr": 5.25e-4, "warmup": 40, "epochs": 800},
}
import yaml

yaml_path = os.path.join(work, "pretrain-32px-8f.yaml")
with open(yaml_path, "w") as f:
    yaml.safe_dump(official_yaml, f)
arch_path = yaml_path
if QUICK:  # smoke run: a 2-block model given as a JSON arch instead of the YAML
    arch_path = os.path.join(work, "tiny.json")
    with open(arch_path, "w") as f:
        json.dump({"base": "vjepa2_vitl16", "image_size": 32, "patch_size": 8,
                   "num_frames": 8, "hidden_dim": 48, "depth": 2, "num_heads": 2,
                   "predictor_dim": 24, "predictor_depth": 1, "predictor_heads": 2,
                   "num_mask_tokens": 2}, f)

try:
    import torch
except ImportError:
    torch = None
    print("torch is not installed: the .pt step is skipped; conversion from a dict still "
          "works (see convert_checkpoint).")

trained = build_model_from_arch(arch_path)
state = export_official_state(trained)
checkpoint = {
    part: {f"module.backbone.{k}": v for k, v in tensors.items()}
    for part, tensors in state.items()
}
checkpoint.update({"opt": {"state": {}, "param_groups": []}, "epoch": 10, "loss": 0.4})
ckpt_path = os.path.join(work, "jepa-latest.pt")
if torch is not None:

    def as_torch(value):
        if isinstance(value, dict):
            return {k: as_torch(v) for k, v in value.items()}
        return torch.from_numpy(value) if isinstance(value, np.ndarray) else value

    torch.save(as_torch(checkpoint), ckpt_path)

"""
## Converting it

The command line reads the file with `torch.load(weights_only=True)` (it never unpickles
arbitrary objects), checks every tensor's name and shape against the architecture, and
writes a preset folder. `--arch` takes the official YAML of the run, an official preset
name (`vjepa2_vitl16_256`, ...), a `keras_jepa.models.jepa.recipes` config name, or a JSON file.
"""

preset_dir = os.path.join(work, "converted")
if torch is not None:
    command = [sys.executable, "-m", "keras_jepa.cli", "--backend", keras.backend.backend(),
               "convert", ckpt_path, preset_dir, "--arch", arch_path]
    print("$ keras-jepa convert", ckpt_path, preset_dir, "--arch", arch_path)
    result = subprocess.run(command, capture_output=True, text=True)
    print(result.stdout.strip() or result.stderr.strip()[-2000:])
    if result.returncode != 0:
        raise SystemExit("conversion failed")
else:
    from keras_jepa.applications import convert_checkpoint

    convert_checkpoint(checkpoint, preset_dir, arch=arch_path)

"""
## Loading: the full model, or one encoder

`VJEPA.from_preset` returns all three modules. `model.backbone` is the encoder used for
features (`feature_encoder="target"` by default).
"""

model = VJEPA.from_preset(preset_dir)
print("feature encoder:", model.feature_encoder, "| predictor mask tokens:",
      model.predictor.num_mask_tokens)
backbone = VisionTransformer.from_preset(preset_dir)  # the target encoder
context_backbone = VisionTransformer.from_preset(preset_dir, encoder="context")

"""
## Feature extraction

A clip is `(batch, frames, height, width, 3)`, RGB in [0, 1] normalised with the ImageNet
mean and standard deviation (see the preset's `preprocessing`). The encoder returns one
token per tubelet (2 frames x 8 x 8 pixels here); mean-pooling gives a clip vector.
"""

rng = np.random.default_rng(0)
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
clips = ((rng.random((4, 8, 32, 32, 3)) - mean) / std).astype("float32")
tokens = keras.ops.convert_to_numpy(backbone.predict(clips, verbose=0))
print("tokens:", tokens.shape, "| pooled:", tokens.mean(axis=1).shape)

# The converted encoder computes what the checkpoint's weights compute:
reference = keras.ops.convert_to_numpy(trained.target_encoder.predict(clips, verbose=0))
print("max |converted - original|:", float(np.abs(tokens - reference).max()))

"""
## Continued pretraining with `fit`

The model is an ordinary `keras.Model`: feed it clips with the V-JEPA masks and call
`fit`. The EMA of the target encoder runs inside the training step, as in pretraining.
"""

config = get_config("vjepa2_vitl16").replace(
    image_size=32, patch_size=8, num_frames=8,
    masks=[dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0),
                aspect_ratio=(0.75, 1.5), num_blocks=2),
           dict(spatial_scale=(0.5, 0.5), temporal_scale=(1.0, 1.0),
                aspect_ratio=(0.75, 1.5), num_blocks=1)],
)
sampler = build_mask_sampler(config, seed=0)


class Clips(keras.utils.PyDataset):
    """Random moving squares with V-JEPA masks: a stand-in for your video loader
    (`keras_jepa.data.VideoDataset` reads real video folders)."""

    def __init__(self, batches, batch_size=4):
        super().__init__()
        self.batches, self.batch_size = batches, batch_size

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        r = np.random.default_rng(index)
        videos = np.zeros((self.batch_size, 8, 32, 32, 3), "float32")
        for b in range(self.batch_size):
            y, x, dy, dx = r.integers(0, 16, 2).tolist() + r.integers(-2, 3, 2).tolist()
            for t in range(8):
                yy, xx = np.clip([y + dy * t, x + dx * t], 0, 24)
                videos[b, t, yy:yy + 8, xx:xx + 8] = r.random(3)
        masks = sampler(self.batch_size, step=index)
        return {"videos": (videos - mean.astype("float32")) / std.astype("float32"),
                "context_indices": tuple(masks["context_indices"]),
                "target_indices": tuple(masks["target_indices"])},


model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.04))
history = model.fit(Clips(2 if QUICK else 20), epochs=1, verbose=2 if QUICK else 1)
print("loss after continued pretraining:", round(history.history["loss"][-1], 4))
model.save_to_preset(os.path.join(work, "continued"))

"""
## The released models

With network access (or the file placed where the error message says), the same calls
load a released model. ViT-L is 300M parameters per encoder: expect minutes on a CPU.
"""

official = os.environ.get("KERAS_JEPA_GUIDE_OFFICIAL")
if official:
    released = VJEPA.from_preset(official) if "vjepa" in official else None
    if released is None:
        from keras_jepa.applications import IJEPA

        released = IJEPA.from_preset(official)
    print(official, "loaded:", released.backbone.count_params(), "encoder parameters")
else:
    from keras_jepa.applications import checkpoint_path

    entry = OFFICIAL_PRESETS["vjepa2_vitl16_256"]
    print("VJEPA.from_preset('vjepa2_vitl16_256') downloads", entry["source"])
    print("or, offline, reads the file placed at", checkpoint_path(entry))
