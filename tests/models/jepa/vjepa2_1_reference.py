"""The official V-JEPA 2.1 encoder and predictor in float64 numpy, straight from their state
dicts (torch layouts, official key names), written from the reference algorithm for the
parity tests of the V-JEPA 2.1 options, predictor and converter.

Encoder: a clip whose frame count equals ``img_temporal_dim_size`` (1) goes through
``patch_embed_img`` (tubelet 1) and gets ``img_mod_embed``; otherwise ``patch_embed``
(tubelet 2) and ``video_mod_embed``. RoPE rotates adjacent channel pairs with both
channels at the same frequency (``repeat_interleave``); with ``interpolate_rope`` the row
and column positions are multiplied by ``(G - 1) / (H - 1)`` and ``(G - 1) / (W - 1)``.
Outputs: ``norms_block[-1]`` of the last block, the hierarchical concatenation, and each
hierarchical layer through its norm.
"""

import math

import numpy as np

EPS = 1e-6


def _strip(state):
    """Float64 copy of a state dict without the ``module.`` / ``backbone.`` prefixes."""
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = np.asarray(value, np.float64)
    return out


def _rand(rng, *shape, scale=0.2, shift=0.0):
    return (shift + scale * rng.standard_normal(shape)).astype(np.float32)


def _block_state(rng, prefix, dim, mlp_hidden):
    return {
        prefix + "norm1.weight": _rand(rng, dim, shift=1.0),
        prefix + "norm1.bias": _rand(rng, dim),
        prefix + "attn.qkv.weight": _rand(rng, 3 * dim, dim),
        prefix + "attn.qkv.bias": _rand(rng, 3 * dim),
        prefix + "attn.proj.weight": _rand(rng, dim, dim),
        prefix + "attn.proj.bias": _rand(rng, dim),
        prefix + "norm2.weight": _rand(rng, dim, shift=1.0),
        prefix + "norm2.bias": _rand(rng, dim),
        prefix + "mlp.fc1.weight": _rand(rng, mlp_hidden, dim),
        prefix + "mlp.fc1.bias": _rand(rng, mlp_hidden),
        prefix + "mlp.fc2.weight": _rand(rng, dim, mlp_hidden, scale=0.1),
        prefix + "mlp.fc2.bias": _rand(rng, dim),
    }


def encoder_state(rng, dim, depth, mlp_hidden, patch, tubelet, num_levels, channels=3,
                  prefix=""):
    """A V-JEPA 2.1 encoder state dict as the official code saves it."""
    state = {
        "patch_embed.proj.weight": _rand(rng, dim, channels, tubelet, patch, patch, scale=0.1),
        "patch_embed.proj.bias": _rand(rng, dim),
        "patch_embed_img.proj.weight": _rand(rng, dim, channels, 1, patch, patch, scale=0.1),
        "patch_embed_img.proj.bias": _rand(rng, dim),
        "img_mod_embed": _rand(rng, 1, 1, dim, scale=0.5),
        "video_mod_embed": _rand(rng, 1, 1, dim, scale=0.5),
    }
    for i in range(depth):
        state.update(_block_state(rng, f"blocks.{i}.", dim, mlp_hidden))
    for k in range(num_levels):
        state[f"norms_block.{k}.weight"] = _rand(rng, dim, shift=1.0)
        state[f"norms_block.{k}.bias"] = _rand(rng, dim)
    return {prefix + k: v for k, v in state.items()}


def predictor_state(rng, dim, pred_dim, depth, mlp_hidden, levels, out_width,
                    num_mask_tokens, all_tokens=True, prefix=""):
    """A V-JEPA 2.1 predictor state dict (``levels`` input levels of width ``dim``,
    ``levels * out_width`` outputs)."""
    state = {}
    if levels == 1:
        state["predictor_embed.weight"] = _rand(rng, pred_dim, dim)
        state["predictor_embed.bias"] = _rand(rng, pred_dim)
    else:
        state["predictor_embed.0.weight"] = _rand(rng, dim, levels * dim)
        state["predictor_embed.0.bias"] = _rand(rng, dim)
        state["predictor_embed.2.weight"] = _rand(rng, pred_dim, dim)
        state["predictor_embed.2.bias"] = _rand(rng, pred_dim)
    for i in range(num_mask_tokens):
        state[f"mask_tokens.{i}"] = _rand(rng, 1, 1, pred_dim, scale=0.5)
    state["video_mod_embed"] = _rand(rng, 1, 1, pred_dim, scale=0.5)
    state["img_mod_embed"] = _rand(rng, 1, 1, pred_dim, scale=0.5)
    for i in range(depth):
        state.update(_block_state(rng, f"predictor_blocks.{i}.", pred_dim, mlp_hidden))
    state["predictor_norm.weight"] = _rand(rng, pred_dim, shift=1.0)
    state["predictor_norm.bias"] = _rand(rng, pred_dim)
    state["predictor_proj.weight"] = _rand(rng, levels * out_width, pred_dim)
    state["predictor_proj.bias"] = _rand(rng, levels * out_width)
    if all_tokens:
        state["predictor_proj_context.weight"] = _rand(rng, levels * out_width, pred_dim)
        state["predictor_proj_context.bias"] = _rand(rng, levels * out_width)
    return {prefix + k: v for k, v in state.items()}


def _ln(x, w, b, eps=EPS):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _rotate(x, pos):
    """Interleaved RoPE of ``x (B, H, N, d)`` at float positions ``pos (B, N)``."""
    d = x.shape[-1]
    omega = 1.0 / 10000.0 ** (np.arange(d // 2) / (d / 2.0))
    freq = np.repeat(pos[:, None, :, None] * omega, 2, axis=-1)
    pairs = x.reshape(x.shape[:-1] + (d // 2, 2))
    turned = np.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)
    return x * np.cos(freq) + turned * np.sin(freq)


def _positions(ids, per_row, per_frame, scale_h=1.0, scale_w=1.0):
    frame = ids // per_frame
    rest = ids - frame * per_frame
    row = rest // per_row
    col = rest - row * per_row
    return frame * 1.0, row * scale_h, col * scale_w


def run_blocks(s, prefix, depth, x, coords, heads, hook=None):
    """Pre-norm blocks ``{prefix}.{i}``; ``hook(i, x)`` sees each block's output."""
    b, n, dim = x.shape
    hd = dim // heads
    seg = 2 * ((hd // 3) // 2)
    for i in range(depth):
        p = f"{prefix}.{i}."
        y = _ln(x, s[p + "norm1.weight"], s[p + "norm1.bias"])
        qkv = y @ s[p + "attn.qkv.weight"].T + s[p + "attn.qkv.bias"]
        q, k, v = qkv.reshape(b, n, 3, heads, hd).transpose(2, 0, 3, 1, 4)
        qs, ks = [], []
        for a, pos in enumerate(coords):
            part = slice(a * seg, (a + 1) * seg)
            qs.append(_rotate(q[..., part], pos))
            ks.append(_rotate(k[..., part], pos))
        q = np.concatenate(qs + [q[..., 3 * seg:]], axis=-1)
        k = np.concatenate(ks + [k[..., 3 * seg:]], axis=-1)
        logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
        attn = np.exp(logits - logits.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        out = (attn @ v).transpose(0, 2, 1, 3).reshape(b, n, dim)
        x = x + out @ s[p + "attn.proj.weight"].T + s[p + "attn.proj.bias"]
        y = _ln(x, s[p + "norm2.weight"], s[p + "norm2.bias"])
        y = _gelu(y @ s[p + "mlp.fc1.weight"].T + s[p + "mlp.fc1.bias"])
        x = x + y @ s[p + "mlp.fc2.weight"].T + s[p + "mlp.fc2.bias"]
        if hook is not None:
            hook(i, x)
    return x


def encoder_forward(state, clip, patch, heads, hierarchical_layers, n_output_distillation=4,
                    token_indices=None, interpolate_grid=None, img_frames=1):
    """Float64 forward of the official 2.1 encoder on a channels-last clip
    ``(B, T, H, W, C)``.

    Returns ``{"output": (B, N, D), "hierarchical": (B, N, n * D), "layers": {i: (B, N,
    D)}}``. ``interpolate_grid`` is ``G`` of ``interpolate_rope`` (``None``: off).
    """
    s = _strip(state)
    x = np.asarray(clip, np.float64)
    b, t, h, w, c = x.shape
    image = t == img_frames
    name = "patch_embed_img" if image else "patch_embed"
    kernel = s[name + ".proj.weight"]  # (D, C, tt, p, p)
    dim, tt = kernel.shape[0], kernel.shape[2]
    gt, gh, gw = t // tt, h // patch, w // patch
    cubes = x.reshape(b, gt, tt, gh, patch, gw, patch, c).transpose(0, 1, 3, 5, 7, 2, 4, 6)
    tokens = cubes.reshape(b, gt * gh * gw, -1) @ kernel.reshape(dim, -1).T
    tokens = tokens + s[name + ".proj.bias"]
    tokens = tokens + s["img_mod_embed" if image else "video_mod_embed"][0]
    ids = np.tile(np.arange(gt * gh * gw), (b, 1))
    if token_indices is not None:
        ids = np.broadcast_to(np.asarray(token_indices), (b, np.shape(token_indices)[-1]))
        tokens = np.take_along_axis(tokens, ids[..., None], axis=1)
    sh = sw = 1.0
    if interpolate_grid is not None:
        sh = (interpolate_grid - 1.0) / (gh - 1.0)
        sw = (interpolate_grid - 1.0) / (gw - 1.0)
    coords = _positions(ids, gw, gh * gw, sh, sw)
    depth = len({k.split(".")[1] for k in s if k.startswith("blocks.")})
    layers = {}

    def keep(i, out):
        if i in hierarchical_layers:
            k = hierarchical_layers.index(i)
            layers[i] = _ln(out, s[f"norms_block.{k}.weight"], s[f"norms_block.{k}.bias"])

    tokens = run_blocks(s, "blocks", depth, tokens, coords, heads, hook=keep)
    last = len(hierarchical_layers) - 1
    output = _ln(tokens, s[f"norms_block.{last}.weight"], s[f"norms_block.{last}.bias"])
    chosen = hierarchical_layers[len(hierarchical_layers) - n_output_distillation:]
    hier = np.concatenate([layers[i] for i in chosen], axis=-1)
    return {"output": output, "hierarchical": hier, "layers": layers}


def predictor_forward(state, context, context_ids, target_ids, grid_hw, heads, mask_index=1,
                      modality="video"):
    """Float64 forward of the official 2.1 predictor. Returns ``(targets, context)``
    outputs (``context`` is None without ``predictor_proj_context``). ``grid_hw`` is the
    predictor's ``img_size // patch`` (square grid)."""
    s = _strip(state)
    x = np.asarray(context, np.float64)
    if "predictor_embed.weight" in s:
        x = x @ s["predictor_embed.weight"].T + s["predictor_embed.bias"]
    else:
        x = _gelu(x @ s["predictor_embed.0.weight"].T + s["predictor_embed.0.bias"])
        x = x @ s["predictor_embed.2.weight"].T + s["predictor_embed.2.bias"]
    count = len([k for k in s if k.startswith("mask_tokens.")])
    token = s[f"mask_tokens.{mask_index % count}"][0]
    context_ids, target_ids = np.asarray(context_ids), np.asarray(target_ids)
    queries = np.broadcast_to(token, target_ids.shape + (x.shape[-1],))
    seq = np.concatenate([x, queries], axis=1)
    ids = np.concatenate([context_ids, target_ids], axis=1)
    # The official order: sort by position, run, unsort (kept here on purpose).
    order = np.argsort(ids, axis=1, kind="stable")
    seq = np.take_along_axis(seq, order[..., None], axis=1)
    ids = np.take_along_axis(ids, order, axis=1)
    seq = seq + s["img_mod_embed" if modality == "image" else "video_mod_embed"][0]
    coords = _positions(ids, grid_hw, grid_hw * grid_hw)
    depth = len({k.split(".")[1] for k in s if k.startswith("predictor_blocks.")})
    seq = run_blocks(s, "predictor_blocks", depth, seq, coords, heads)
    seq = _ln(seq, s["predictor_norm.weight"], s["predictor_norm.bias"])
    seq = np.take_along_axis(seq, np.argsort(order, axis=1)[..., None], axis=1)
    n = context_ids.shape[1]
    targets = seq[:, n:] @ s["predictor_proj.weight"].T + s["predictor_proj.bias"]
    ctx = None
    if "predictor_proj_context.weight" in s:
        ctx = seq[:, :n] @ s["predictor_proj_context.weight"].T + s["predictor_proj_context.bias"]
    return targets, ctx
