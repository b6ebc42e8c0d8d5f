"""The official JEPA modules re-implemented in float64 numpy, straight from their state
dicts (torch layouts, official key names): the encoder (I-JEPA, V-JEPA, V-JEPA 2) and the
predictor (I-JEPA: one mask token, 2-D sin-cos; V-JEPA: mask_tokens list, 3-D sin-cos;
V-JEPA 2: RoPE over the concatenated context and target positions), and the attentive
probe (``official_probe_state_dict`` / ``official_probe_forward``). Written from the
reference algorithm, independently of keras_jepa's code, for converter parity tests.
"""

import math

import numpy as np


def official_state(rng, dim, depth, mlp_hidden, patch, channels, num_tokens,
                   tubelet=None, pos_embed=True, prefix=""):
    """An encoder state dict as the official code saves it (torch layouts)."""
    kernel = (patch, patch) if tubelet is None else (tubelet, patch, patch)

    def rand(*shape, scale=0.2, shift=0.0):
        return (shift + scale * rng.standard_normal(shape)).astype(np.float32)

    state = {
        "patch_embed.proj.weight": rand(dim, channels, *kernel, scale=0.1),
        "patch_embed.proj.bias": rand(dim),
    }
    if pos_embed:
        state["pos_embed"] = rand(1, num_tokens, dim, scale=0.5)
    for i in range(depth):
        b = f"blocks.{i}."
        state.update(
            {
                b + "norm1.weight": rand(dim, shift=1.0),
                b + "norm1.bias": rand(dim),
                b + "attn.qkv.weight": rand(3 * dim, dim),
                b + "attn.qkv.bias": rand(3 * dim),
                b + "attn.proj.weight": rand(dim, dim),
                b + "attn.proj.bias": rand(dim),
                b + "norm2.weight": rand(dim, shift=1.0),
                b + "norm2.bias": rand(dim),
                b + "mlp.fc1.weight": rand(mlp_hidden, dim),
                b + "mlp.fc1.bias": rand(mlp_hidden),
                b + "mlp.fc2.weight": rand(dim, mlp_hidden, scale=0.1),
                b + "mlp.fc2.bias": rand(dim),
            }
        )
    state["norm.weight"] = rand(dim, shift=1.0)
    state["norm.bias"] = rand(dim)
    return {prefix + k: v for k, v in state.items()}


_erf = np.frompyfunc(math.erf, 1, 1)


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _rope(x, pos, tiled):
    """torch-style rotation of ``x (B, H, N, d)`` at integer positions ``pos (B, N)``."""
    d = x.shape[-1]
    omega = 1.0 / 10000 ** (np.arange(d // 2) / (d / 2))
    freq = pos[:, None, :, None] * omega  # (B, 1, N, d/2)
    if tiled:  # the released V-JEPA 2 layout: [f0..f_{d/2-1}, f0..f_{d/2-1}]
        freq = np.concatenate([freq, freq], axis=-1)
    else:
        freq = np.repeat(freq, 2, axis=-1)
    y = np.stack([-x[..., 1::2], x[..., 0::2]], axis=-1).reshape(x.shape)
    return x * np.cos(freq) + y * np.sin(freq)


def reference_forward(state, x, patch, heads, tubelet=None, eps=1e-6,
                      token_indices=None, rope_tiled=None):
    """Float64 forward of the official encoder from its state dict (torch layouts).

    ``x`` is channels-last; ``rope_tiled`` None means sin-cos (``pos_embed`` added).
    """
    x = np.asarray(x, np.float64)
    s = {k: np.asarray(v, np.float64) for k, v in state.items()}
    w = s["patch_embed.proj.weight"]  # (D, C, [t,] p, p)
    dim = w.shape[0]
    if tubelet is None:
        b, h, wd, c = x.shape
        grid = (1, h // patch, wd // patch)
        p = x.reshape(b, h // patch, patch, wd // patch, patch, c)
        p = p.transpose(0, 1, 3, 5, 2, 4)  # (B, h, w, C, p, p)
    else:
        b, t, h, wd, c = x.shape
        grid = (t // tubelet, h // patch, wd // patch)
        p = x.reshape(b, t // tubelet, tubelet, h // patch, patch, wd // patch, patch, c)
        p = p.transpose(0, 1, 3, 5, 7, 2, 4, 6)  # (B, t, h, w, C, tt, p, p)
    n = int(np.prod(grid))
    tokens = p.reshape(b, n, -1) @ w.reshape(dim, -1).T + s["patch_embed.proj.bias"]
    if rope_tiled is None:
        tokens = tokens + s["pos_embed"]
    ids = np.tile(np.arange(n), (b, 1))
    if token_indices is not None:
        ids = np.broadcast_to(np.asarray(token_indices), (b, np.shape(token_indices)[-1]))
        tokens = np.take_along_axis(tokens, ids[..., None], axis=1)
    tokens = blocks_forward(s, "blocks", tokens, ids, grid, heads, rope_tiled, eps)
    return _layer_norm(tokens, s["norm.weight"], s["norm.bias"], eps)


def blocks_forward(s, prefix, tokens, ids, grid, heads, rope_tiled, eps=1e-6):
    """The pre-norm blocks ``{prefix}.{i}.*`` of a float64 state dict ``s``; RoPE (if
    ``rope_tiled`` is not None) at token ids ``ids (B, N)`` of a ``(T, H, W)`` grid."""
    b, _, dim = tokens.shape
    per_frame = grid[1] * grid[2]
    coords = (ids // per_frame, (ids % per_frame) // grid[2], ids % grid[2])
    depth = len({k.split(".")[1] for k in s if k.startswith(prefix + ".")})
    hd = dim // heads
    seg = 2 * ((hd // 3) // 2)
    for i in range(depth):
        pre = f"{prefix}.{i}."
        hdn = _layer_norm(tokens, s[pre + "norm1.weight"], s[pre + "norm1.bias"], eps)
        qkv = hdn @ s[pre + "attn.qkv.weight"].T + s[pre + "attn.qkv.bias"]
        qkv = qkv.reshape(b, -1, 3, heads, hd).transpose(2, 0, 3, 1, 4)  # (3, B, H, N, hd)
        q, k, v = qkv
        if rope_tiled is not None:
            parts_q, parts_k = [], []
            for a, pos in enumerate(coords):
                sl = slice(a * seg, (a + 1) * seg)
                parts_q.append(_rope(q[..., sl], pos, rope_tiled))
                parts_k.append(_rope(k[..., sl], pos, rope_tiled))
            q = np.concatenate(parts_q + [q[..., 3 * seg:]], axis=-1)
            k = np.concatenate(parts_k + [k[..., 3 * seg:]], axis=-1)
        logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
        attn = np.exp(logits - logits.max(-1, keepdims=True))
        attn = attn / attn.sum(-1, keepdims=True)
        out = (attn @ v).transpose(0, 2, 1, 3).reshape(b, -1, dim)
        tokens = tokens + out @ s[pre + "attn.proj.weight"].T + s[pre + "attn.proj.bias"]
        hdn = _layer_norm(tokens, s[pre + "norm2.weight"], s[pre + "norm2.bias"], eps)
        hdn = hdn @ s[pre + "mlp.fc1.weight"].T + s[pre + "mlp.fc1.bias"]
        hdn = 0.5 * hdn * (1.0 + _erf(hdn / math.sqrt(2.0)).astype(np.float64))
        tokens = tokens + hdn @ s[pre + "mlp.fc2.weight"].T + s[pre + "mlp.fc2.bias"]
    return tokens


def official_predictor_state(rng, dim, pred_dim, depth, mlp_hidden, num_tokens,
                             mask_tokens=None, pos_embed=True, prefix=""):
    """A predictor state dict as the official code saves it. ``mask_tokens=None``: I-JEPA's
    single ``mask_token``; an int: V-JEPA's ``mask_tokens.{i}`` list."""

    def rand(*shape, scale=0.2, shift=0.0):
        return (shift + scale * rng.standard_normal(shape)).astype(np.float32)

    state = {"predictor_embed.weight": rand(pred_dim, dim),
             "predictor_embed.bias": rand(pred_dim)}
    if mask_tokens is None:
        state["mask_token"] = rand(1, 1, pred_dim, scale=0.5)
    else:
        for i in range(mask_tokens):
            state[f"mask_tokens.{i}"] = rand(1, 1, pred_dim, scale=0.5)
    if pos_embed:
        state["predictor_pos_embed"] = rand(1, num_tokens, pred_dim, scale=0.5)
    blocks = official_state(rng, pred_dim, depth, mlp_hidden, 1, 1, 1, pos_embed=False)
    for key, value in blocks.items():
        if key.startswith("blocks."):
            state["predictor_" + key] = value
    state.update({"predictor_norm.weight": rand(pred_dim, shift=1.0),
                  "predictor_norm.bias": rand(pred_dim),
                  "predictor_proj.weight": rand(dim, pred_dim),
                  "predictor_proj.bias": rand(dim)})
    return {prefix + k: v for k, v in state.items()}


def reference_predictor_forward(state, context, context_ids, target_ids, grid, heads,
                                mask_index=0, rope_tiled=None, eps=1e-6):
    """Float64 forward of the official predictor from its state dict.

    ``context (B, Nc, D)`` are context-encoder outputs at token ids ``context_ids (B, Nc)``;
    predictions for ``target_ids (B, Nt)`` are returned ``(B, Nt, D)``. ``grid`` is the
    ``(T, H, W)`` token grid (``T = 1`` for images); ``rope_tiled`` None means sin-cos.
    """
    s = {k: np.asarray(v, np.float64) for k, v in state.items()}
    context_ids = np.asarray(context_ids)
    target_ids = np.asarray(target_ids)
    x = np.asarray(context, np.float64) @ s["predictor_embed.weight"].T
    x = x + s["predictor_embed.bias"]
    token = s["mask_token"] if "mask_token" in s else s[f"mask_tokens.{mask_index}"]
    queries = np.broadcast_to(token[0], target_ids.shape + (x.shape[-1],))
    if rope_tiled is None:
        table = s["predictor_pos_embed"][0]
        x = x + table[context_ids]
        queries = queries + table[target_ids]
    tokens = np.concatenate([x, queries], axis=1)
    ids = np.concatenate([context_ids, target_ids], axis=1)
    tokens = blocks_forward(s, "predictor_blocks", tokens, ids, grid, heads, rope_tiled, eps)
    tokens = _layer_norm(tokens, s["predictor_norm.weight"], s["predictor_norm.bias"], eps)
    tokens = tokens[:, context_ids.shape[1]:]
    return tokens @ s["predictor_proj.weight"].T + s["predictor_proj.bias"]

# ---------------------------------------------------------------------------------------
# The official attentive probe (V-JEPA ``AttentiveClassifier``: V-JEPA 1 cross-attention
# then self-attention blocks; V-JEPA 2 self-attention blocks then cross-attention), shared
# by the probe and converter tests.
# ---------------------------------------------------------------------------------------

PROBE_DIM, PROBE_HEADS, PROBE_CLASSES = 32, 4, 7


def official_probe_state_dict(variant, depth, rng, with_unused_proj=True):
    """Random weights under the exact official keys, torch layouts, ``module.`` prefix."""
    state = {"pooler.query_tokens": rng.normal(0, 1, (1, 1, PROBE_DIM))}

    def linear(prefix, out, inp):
        state[f"{prefix}.weight"] = rng.normal(0, 1 / math.sqrt(inp), (out, inp))
        state[f"{prefix}.bias"] = rng.normal(0, 0.1, (out,))

    def norm(prefix):
        state[f"{prefix}.weight"] = 1 + rng.normal(0, 0.2, (PROBE_DIM,))
        state[f"{prefix}.bias"] = rng.normal(0, 0.2, (PROBE_DIM,))

    cross = "pooler.cross_attention_block"
    norm(f"{cross}.norm1")
    linear(f"{cross}.xattn.q", PROBE_DIM, PROBE_DIM)
    linear(f"{cross}.xattn.kv", 2 * PROBE_DIM, PROBE_DIM)
    if variant == "vjepa" and with_unused_proj:
        linear(f"{cross}.xattn.proj", PROBE_DIM, PROBE_DIM)
    norm(f"{cross}.norm2")
    linear(f"{cross}.mlp.fc1", 4 * PROBE_DIM, PROBE_DIM)
    linear(f"{cross}.mlp.fc2", PROBE_DIM, 4 * PROBE_DIM)
    for i in range(depth - 1):
        prefix = f"pooler.blocks.{i}"
        norm(f"{prefix}.norm1")
        linear(f"{prefix}.attn.qkv", 3 * PROBE_DIM, PROBE_DIM)
        linear(f"{prefix}.attn.proj", PROBE_DIM, PROBE_DIM)
        norm(f"{prefix}.norm2")
        linear(f"{prefix}.mlp.fc1", 4 * PROBE_DIM, PROBE_DIM)
        linear(f"{prefix}.mlp.fc2", PROBE_DIM, 4 * PROBE_DIM)
    linear("linear", PROBE_CLASSES, PROBE_DIM)
    return {"module." + k: v.astype(np.float32) for k, v in state.items()}


def _probe_ln(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _probe_lin(x, s, prefix):
    return x @ s[f"{prefix}.weight"].T + s[f"{prefix}.bias"]


def _probe_gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _probe_softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _probe_attend(q, k, v):
    """Heads split as in the official reshape ``(B, n, H, hd)``; scale ``hd ** -0.5``."""
    b, n, _ = q.shape
    hd = PROBE_DIM // PROBE_HEADS
    split = lambda t: t.reshape(b, t.shape[1], PROBE_HEADS, hd).transpose(0, 2, 1, 3)  # noqa: E731
    a = _probe_softmax(split(q) @ split(k).transpose(0, 1, 3, 2) * hd**-0.5)
    return (a @ split(v)).transpose(0, 2, 1, 3).reshape(b, n, PROBE_DIM)


def _probe_mlp(x, s, prefix):
    return _probe_lin(_probe_gelu(_probe_lin(x, s, f"{prefix}.fc1")), s, f"{prefix}.fc2")


def _probe_self_block(x, s, prefix):
    h = _probe_ln(x, s[f"{prefix}.norm1.weight"], s[f"{prefix}.norm1.bias"])
    qkv = _probe_lin(h, s, f"{prefix}.attn.qkv")
    d = PROBE_DIM
    attended = _probe_attend(qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:])
    x = x + _probe_lin(attended, s, f"{prefix}.attn.proj")
    h = _probe_ln(x, s[f"{prefix}.norm2.weight"], s[f"{prefix}.norm2.bias"])
    return x + _probe_mlp(h, s, f"{prefix}.mlp")


def official_probe_forward(state, x, variant, depth):
    """float64 numpy forward of the official AttentiveClassifier from its state dict."""
    s = {k[len("module."):]: v.astype(np.float64) for k, v in state.items()}
    x = x.astype(np.float64)
    blocks = [f"pooler.blocks.{i}" for i in range(depth - 1)]
    if variant == "vjepa2":
        for prefix in blocks:
            x = _probe_self_block(x, s, prefix)
    c = "pooler.cross_attention_block"
    q = np.repeat(s["pooler.query_tokens"], x.shape[0], axis=0)
    kv_in = _probe_ln(x, s[f"{c}.norm1.weight"], s[f"{c}.norm1.bias"])
    kv = _probe_lin(kv_in, s, f"{c}.xattn.kv")
    q = q + _probe_attend(_probe_lin(q, s, f"{c}.xattn.q"), kv[..., :PROBE_DIM],
                          kv[..., PROBE_DIM:])  # no proj
    q = q + _probe_mlp(_probe_ln(q, s[f"{c}.norm2.weight"], s[f"{c}.norm2.bias"]), s, f"{c}.mlp")
    if variant == "vjepa":
        for prefix in blocks:
            q = _probe_self_block(q, s, prefix)
    return _probe_lin(q[:, 0], s, "linear")
