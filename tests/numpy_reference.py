"""An independent float64 numpy forward pass of the JEPA ViT, written from the reference
algorithm (not from keras_jepa's code), used to check the Keras model on every backend.

It reads the Keras model's weights by their official names and recomputes everything else
(patchify by reshaping, position tables with explicit loops, per-token RoPE rotation,
attention with an explicit softmax).
"""

import math

import numpy as np


def to_numpy(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def sincos_loop(dim, pos):
    """``[sin(pos * w_i) | cos(pos * w_i)]`` with ``w_i = 10000^(-2i/dim)``, one position."""
    half = dim // 2
    out = np.zeros(dim)
    for i in range(half):
        w = 1.0 / 10000 ** (i / half)
        out[i] = math.sin(pos * w)
        out[half + i] = math.cos(pos * w)
    return out


def position_table(grid, dim, order="hw", uniform_power=False):
    rows = []
    if len(grid) == 2:
        for h in range(grid[0]):
            for w in range(grid[1]):
                a, b = sincos_loop(dim // 2, h), sincos_loop(dim // 2, w)
                rows.append(np.concatenate([a, b] if order == "hw" else [b, a]))
        return np.array(rows)
    if uniform_power:
        dt = dh = dw = int(math.ceil(dim / 6) * 2)
    else:
        dt, dh, dw = dim // 2, dim // 4, dim // 4
    for t in range(grid[0]):
        for h in range(grid[1]):
            for w in range(grid[2]):
                row = np.concatenate(
                    [sincos_loop(dt, t), sincos_loop(dh, h), sincos_loop(dw, w)]
                )
                rows.append(row[:dim])
    return np.array(rows)


def patchify(x, patch, tubelet=None):
    """Flattens ``(B, [T,] H, W, C)`` into row-major patches ``(B, N, [t*]p*p*C)``."""
    if tubelet is None:
        b, h, w, c = x.shape
        x = x.reshape(b, h // patch, patch, w // patch, patch, c)
        x = x.transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)
    b, t, h, w, c = x.shape
    x = x.reshape(b, t // tubelet, tubelet, h // patch, patch, w // patch, patch, c)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
    n = (t // tubelet) * (h // patch) * (w // patch)
    return x.reshape(b, n, tubelet * patch * patch * c)


def rope_rotate(x, pos, dim, tiled):
    """Rotates ``x (N, dim)`` channel pairs at per-token positions ``pos (N,)``.

    Channel ``j`` turns by ``pos * omega[f(j)]`` with ``f(j) = j mod dim/2`` (tiled, the
    released V-JEPA 2 layout) or ``j // 2`` (interleaved); its pair partner is ``j ^ 1``.
    """
    half = dim // 2
    j = np.arange(dim)
    f = (j % half) if tiled else (j // 2)
    theta = np.asarray(pos, dtype=np.float64)[:, None] / 10000.0 ** (f / half)[None, :]
    partner = x[:, j ^ 1] * np.where(j % 2 == 0, -1.0, 1.0)
    return x * np.cos(theta) + partner * np.sin(theta)


def layer_norm(x, gamma, beta, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def dense(x, layer):
    w = to_numpy(layer.kernel)
    y = x @ w
    if layer.bias is not None:
        y = y + to_numpy(layer.bias)
    return y


def vit_forward(model, x, token_indices=None):
    """Reference forward of ``keras_jepa.models.VisionTransformer`` in float64."""
    x = np.asarray(x, dtype=np.float64)
    video = model.num_frames is not None
    p = model.patch_size
    tub = model.tubelet_size if video else None
    patches = patchify(x, p, tub)
    kernel = to_numpy(model.patch_embed.proj.kernel)
    tokens = patches @ kernel.reshape(-1, kernel.shape[-1])
    tokens = tokens + to_numpy(model.patch_embed.proj.bias)
    if video:
        grid = (x.shape[1] // tub, x.shape[2] // p, x.shape[3] // p)
    else:
        grid = (x.shape[1] // p, x.shape[2] // p)
    n_tokens = int(np.prod(grid))
    if model.position_embedding == "sincos":
        assert grid == tuple(model.grid_size()), "reference covers the stored grid only"
        tokens = tokens + position_table(
            grid, model.hidden_dim, model.sincos_order, model.uniform_power
        )
    batch = x.shape[0]
    if token_indices is None:
        ids = np.tile(np.arange(n_tokens), (batch, 1))
    else:
        ids = np.asarray(token_indices)
        if ids.ndim == 1:
            ids = np.tile(ids, (batch, 1))
        tokens = np.stack([tokens[b, ids[b]] for b in range(batch)])
    for blk in model.blocks:
        tokens = block_forward(blk, tokens, ids, model, grid)
    if model.norm is not None:
        tokens = layer_norm(
            tokens, to_numpy(model.norm.gamma), to_numpy(model.norm.beta), model.norm.epsilon
        )
    return tokens


def block_forward(blk, x, ids, model, grid):
    heads = blk.num_heads
    b, n, d = x.shape
    hd = d // heads
    h = layer_norm(x, to_numpy(blk.norm1.gamma), to_numpy(blk.norm1.beta), blk.norm1.epsilon)
    qkv = dense(h, blk.attn.qkv).reshape(b, n, 3, heads, hd)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if model.position_embedding == "rope":
        grid3 = grid if len(grid) == 3 else (1,) + tuple(grid)
        seg = 2 * ((hd // 3) // 2)
        per_frame = grid3[1] * grid3[2]
        for bi in range(b):
            frame = ids[bi] // per_frame
            row = (ids[bi] % per_frame) // grid3[2]
            col = ids[bi] % grid3[2]
            for hi in range(heads):
                for arr in (q, k):
                    vec = arr[bi, :, hi]
                    for s, pos in enumerate((frame, row, col)):
                        sl = slice(s * seg, (s + 1) * seg)
                        vec[:, sl] = rope_rotate(vec[:, sl], pos, seg, model.rope_tiled)
    logits = np.einsum("bnhd,bmhd->bhnm", q, k) / math.sqrt(hd)
    logits = logits - logits.max(-1, keepdims=True)
    attn = np.exp(logits)
    attn = attn / attn.sum(-1, keepdims=True)
    out = np.einsum("bhnm,bmhd->bnhd", attn, v).reshape(b, n, d)
    x = x + dense(out, blk.attn.proj)
    h = layer_norm(x, to_numpy(blk.norm2.gamma), to_numpy(blk.norm2.beta), blk.norm2.epsilon)
    if blk.mlp_type == "gelu":
        y = dense(gelu(dense(h, blk.mlp.fc1)), blk.mlp.fc2)
    else:
        a = dense(h, blk.mlp.fc1)
        y = dense(a / (1 + np.exp(-a)) * dense(h, blk.mlp.fc2), blk.mlp.fc3)
    residual = x if blk.shortcut is None else dense(x, blk.shortcut)
    return residual + y
