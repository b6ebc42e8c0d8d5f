"""The official V-JEPA 2-AC predictor (``VisionTransformerPredictorAC`` with
``ACRoPEAttention`` blocks) re-implemented in float64 numpy from its state dict (torch
layouts, official key names), for parity tests. Written from the reference algorithm,
independently of keras_jepa's code: the action/state tokens are split out of the sequence
inside every attention layer, rotated on their first segment by their step index, the
frame tokens by (frame, row, col), then merged back step by step before a masked softmax.
"""

import math

import numpy as np


def official_ac_predictor_state(rng, embed_dim, pred_dim, depth, action_dim, mlp_ratio=4,
                                prefix=""):
    """Random weights under the official ``predictor`` keys (torch layouts)."""

    def rand(*shape, scale=0.2, shift=0.0):
        return (shift + scale * rng.standard_normal(shape)).astype(np.float32)

    hidden = int(pred_dim * mlp_ratio)
    state = {
        "predictor_embed.weight": rand(pred_dim, embed_dim),
        "predictor_embed.bias": rand(pred_dim),
        "action_encoder.weight": rand(pred_dim, action_dim, scale=0.5),
        "action_encoder.bias": rand(pred_dim),
        "state_encoder.weight": rand(pred_dim, action_dim, scale=0.5),
        "state_encoder.bias": rand(pred_dim),
        "extrinsics_encoder.weight": rand(pred_dim, action_dim - 1),
        "extrinsics_encoder.bias": rand(pred_dim),
    }
    for i in range(depth):
        b = f"predictor_blocks.{i}."
        state.update({
            b + "norm1.weight": rand(pred_dim, shift=1.0), b + "norm1.bias": rand(pred_dim),
            b + "attn.qkv.weight": rand(3 * pred_dim, pred_dim),
            b + "attn.qkv.bias": rand(3 * pred_dim),
            b + "attn.proj.weight": rand(pred_dim, pred_dim), b + "attn.proj.bias": rand(pred_dim),
            b + "norm2.weight": rand(pred_dim, shift=1.0), b + "norm2.bias": rand(pred_dim),
            b + "mlp.fc1.weight": rand(hidden, pred_dim), b + "mlp.fc1.bias": rand(hidden),
            b + "mlp.fc2.weight": rand(pred_dim, hidden, scale=0.1),
            b + "mlp.fc2.bias": rand(pred_dim),
        })
    state.update({
        "predictor_norm.weight": rand(pred_dim, shift=1.0),
        "predictor_norm.bias": rand(pred_dim),
        "predictor_proj.weight": rand(embed_dim, pred_dim),
        "predictor_proj.bias": rand(embed_dim),
    })
    return {prefix + k: v for k, v in state.items()}


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _lin(x, s, name):
    return x @ s[name + ".weight"].T + s[name + ".bias"]


_erf = np.vectorize(math.erf)


def _rotate(x, pos):
    """Official ``rotate_queries_or_keys``: ``x (B, H, N, d)``, ``pos (N,)``; the angle
    table is tiled (``[f_0..f_{d/2-1}, f_0..f_{d/2-1}]``), the pairs are adjacent."""
    d = x.shape[-1]
    omega = 1.0 / 10000.0 ** (np.arange(d // 2) / (d / 2.0))
    freq = np.asarray(pos, np.float64)[:, None] * omega[None, :]
    sin = np.tile(np.sin(freq), (1, 2))
    cos = np.tile(np.cos(freq), (1, 2))
    y = x.reshape(x.shape[:-1] + (d // 2, 2))
    y = np.stack([-y[..., 1], y[..., 0]], axis=-1).reshape(x.shape)
    return x * cos + y * sin


def _attention(x, s, pre, heads, steps, grid, cond):
    b, n, c = x.shape
    hh, ww = grid
    hd = c // heads
    seg = 2 * ((hd // 3) // 2)
    x4 = x.reshape(b, steps, cond + hh * ww, c)

    def qkv_of(tokens):
        out = _lin(tokens, s, pre + "attn.qkv").reshape(b, -1, 3, heads, hd)
        return out.transpose(2, 0, 3, 1, 4)  # (3, B, heads, N, hd)

    # Conditioning tokens (action, state[, extrinsics]) one kind at a time.
    cq, ck, cv = [], [], []
    for i in range(cond):
        q, k, v = qkv_of(x4[:, :, i])
        t = np.arange(steps)
        q = np.concatenate([_rotate(q[..., :seg], t), q[..., seg:]], -1)
        k = np.concatenate([_rotate(k[..., :seg], t), k[..., seg:]], -1)
        cq.append(q[:, :, :, None])
        ck.append(k[:, :, :, None])
        cv.append(v[:, :, :, None])
    cq, ck, cv = (np.concatenate(a, axis=3) for a in (cq, ck, cv))  # (B, H, T, cond, hd)
    # Frame tokens: ids 0..T*H*W-1 over the frames only.
    q, k, v = qkv_of(x4[:, :, cond:].reshape(b, steps * hh * ww, c))
    ids = np.arange(steps * hh * ww)
    frame = ids // (hh * ww)
    row = (ids - frame * hh * ww) // ww
    col = ids - frame * hh * ww - row * ww
    row = row * (hh / hh)
    col = col * (hh / ww)  # grid_size / W with grid_size = H

    def rot3(a):
        parts = [_rotate(a[..., j * seg:(j + 1) * seg], p) for j, p in
                 enumerate((frame, row, col))]
        return np.concatenate(parts + [a[..., 3 * seg:]], -1)

    q, k = rot3(q), rot3(k)

    def merge(frames, conds):
        frames = frames.reshape(b, heads, steps, hh * ww, hd)
        return np.concatenate([conds, frames], axis=3).reshape(b, heads, n, hd)

    q, k, v = merge(q, cq), merge(k, ck), merge(v, cv)
    step_of = np.arange(n) // (cond + hh * ww)
    allowed = step_of[:, None] >= step_of[None, :]
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    logits = np.where(allowed, logits, -np.inf)
    att = np.exp(logits - logits.max(-1, keepdims=True))
    att = att / att.sum(-1, keepdims=True)
    out = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, c)
    return _lin(out, s, pre + "attn.proj")


def reference_ac_forward(state, tokens, actions, states, grid, heads, extrinsics=None,
                         eps=1e-6):
    """Float64 forward of the official AC predictor: ``tokens (B, T*H*W, D)``, ``actions``
    and ``states (B, T, A)`` -> ``(B, T*H*W, D)``."""
    s = {k: np.asarray(v, np.float64) for k, v in state.items()}
    hh, ww = grid
    x = _lin(np.asarray(tokens, np.float64), s, "predictor_embed")
    b, n, c = x.shape
    steps = n // (hh * ww)
    conds = [_lin(np.asarray(actions, np.float64), s, "action_encoder"),
             _lin(np.asarray(states, np.float64), s, "state_encoder")]
    if extrinsics is not None:
        conds.append(_lin(np.asarray(extrinsics, np.float64), s, "extrinsics_encoder"))
    cond = len(conds)
    x = np.concatenate([a[:, :, None] for a in conds] + [x.reshape(b, steps, hh * ww, c)],
                       axis=2).reshape(b, -1, c)
    depth = len({k.split(".")[1] for k in s if k.startswith("predictor_blocks.")})
    for i in range(depth):
        pre = f"predictor_blocks.{i}."
        y = _ln(x, s[pre + "norm1.weight"], s[pre + "norm1.bias"], eps)
        x = x + _attention(y, s, pre, heads, steps, grid, cond)
        y = _ln(x, s[pre + "norm2.weight"], s[pre + "norm2.bias"], eps)
        y = _lin(y, s, pre + "mlp.fc1")
        y = 0.5 * y * (1.0 + _erf(y / math.sqrt(2.0)))
        x = x + _lin(y, s, pre + "mlp.fc2")
    x = x.reshape(b, steps, cond + hh * ww, c)[:, :, cond:].reshape(b, -1, c)
    x = _ln(x, s["predictor_norm.weight"], s["predictor_norm.bias"], eps)
    return _lin(x, s, "predictor_proj")


def layer_norm_plain(x, eps=1e-5):
    """``F.layer_norm(x, (D,))``: no affine."""
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps)


def reference_losses(state, h, actions, states, grid, heads, auto_steps=2):
    """The official ``app/vjepa_droid`` losses (teacher forcing, rollout) from
    layer-normed features ``h (B, T*H*W, D)``, in float64."""
    hw = grid[0] * grid[1]
    steps = h.shape[1] // hw

    def predict(z, a, st):
        return layer_norm_plain(reference_ac_forward(state, z, a, st, grid, heads))

    z_tf = predict(h[:, :-hw], actions, states[:, :-1])
    seq = np.concatenate([h[:, :hw], z_tf[:, :hw]], axis=1)
    for n in range(1, auto_steps):
        nxt = predict(seq, actions[:, :n + 1], states[:, :n + 1])[:, -hw:]
        seq = np.concatenate([seq, nxt], axis=1)
    z_ar = seq[:, hw:]

    def loss(z):
        return np.mean(np.abs(z - h[:, hw:hw + z.shape[1]]))

    assert steps >= auto_steps + 1
    return loss(z_tf), loss(z_ar)
