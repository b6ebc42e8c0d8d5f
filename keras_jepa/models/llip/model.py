"""Llip (Lavoie et al., ICML 2024) and its SigLIP / CLIP baselines.

Llip, "Modeling Caption Diversity in Contrastive Vision-Language Pretraining", replaces
CLIP's single image vector with ``K`` visual *mixture tokens*: learnable tokens appended to
the ViT input whose final-layer outputs ``h_1..h_K`` are mixed by a cross-attention whose
query comes from the caption being scored. Each (image, caption) pair therefore gets its own
image vector ``z_{x|y}``, trained with the SigLIP sigmoid loss.

For caption embedding ``z_y`` (L2-normalised) and mixture tokens ``h`` of image ``x``::

    q = W_q z_y,  k_k = W_k h_k,  v_k = W_v h_k           (split into heads)
    a_k = softmax_k(q . k_k / (tau * sqrt(d_head)))        (per head)
    z_{x|y} = W_o concat_heads(sum_k a_k v_k)              (no residual from z_y)
    logit(x, y) = t * <z_{x|y}/|z_{x|y}|, z_y> + b,  t = exp(t')

What the paper fixes and what it leaves open. No official code is public; the facts above
come from the paper's abstract and figure captions. The number of mixture tokens ``K``, the
mixing temperature ``tau``, the number of mixing heads, whether the query uses the
normalised caption vector, and where the logit scale is clipped are NOT verified against
the paper and are constructor arguments here (defaults: ``K=8``, ``tau=1`` relative to the
usual ``1/sqrt(d_head)``, 4 heads, normalised query). The large models reportedly use about
``K=64`` and a smoother mixing (``tau > 1``) than standard attention; treat both as
unverified. SigLIP's initial logit scale ``t' = log 10`` and bias ``b = -10`` are the
standard SigLIP values; that Llip keeps them is also unverified.

Cost. Every batch needs ``B x B`` contextualised image vectors. They are computed in chunks
of ``pair_chunk_size`` captions (static size; the last chunk is padded), so the forward
pass holds ``B x chunk x embed_dim`` floats at a time instead of ``B x B x embed_dim``. The
output projection is folded into the values once per image (``u_hk = W_o^h v_hk``), so each
chunk is three einsums. On a single device the negatives are the local batch; the losses
call :func:`keras_jepa.backend.replicas.gather_across_replicas`, the hook for global-batch
negatives across devices (the identity today).

Baselines with the same towers: :class:`SigLIP` (one appended token, a linear projection,
sigmoid loss) and :class:`CLIP` (the same with the softmax loss). ``Llip(loss="softmax")``
is the CLIP-loss ablation of Llip.

K=1. With one mixture token the softmax weight is 1 whatever the caption, so Llip's image
vector is ``W_o (W_v h_1 + b_v) + b_o``: a SigLIP image projection whose kernel is
``W_v W_o`` and bias ``b_v W_o + b_o``. ``W_q`` and ``W_k`` then have no effect. This is
what "K=1 reduces to SigLIP" means here (tested).
"""

import math

import keras
from keras import ops

from keras_jepa.backend.replicas import gather_across_replicas
from keras_jepa.layers.initializers import normal_init
from keras_jepa.presets.mixin import Backbone
from keras_jepa.models.llip.text_encoder import TextEncoder
from keras_jepa.models.vit.vision_transformer import VisionTransformer

SIGLIP_LOGIT_SCALE_INIT = math.log(10.0)
SIGLIP_LOGIT_BIAS_INIT = -10.0
CLIP_LOGIT_SCALE_INIT = math.log(1.0 / 0.07)


# ---------------------------------------------------------------------------------- losses


def sigmoid_contrastive_loss(logits):
    """SigLIP's loss: ``-(1/B) sum_ij log sigmoid(s_ij * logits_ij)``, ``s_ii = +1``,
    ``s_ij = -1`` otherwise; ``logits`` is ``(B, B)`` (image rows, text columns), float32.

    Example:

    >>> import numpy as np
    >>> round(float(sigmoid_contrastive_loss(np.zeros((2, 2), "float32"))), 4)
    1.3863
    """
    logits = ops.cast(logits, "float32")
    n = ops.shape(logits)[0]
    labels = 2.0 * ops.eye(n, dtype="float32") - 1.0
    return -ops.sum(ops.log_sigmoid(labels * logits)) / ops.cast(n, "float32")


def softmax_contrastive_loss(logits):
    """CLIP's loss: the mean of image->text and text->image cross-entropies with the
    matching pair on the diagonal, float32.

    Example:

    >>> import numpy as np
    >>> round(float(softmax_contrastive_loss(np.zeros((2, 2), "float32"))), 4)
    0.6931
    """
    logits = ops.cast(logits, "float32")
    diag = ops.diagonal(logits)
    rows = ops.logsumexp(logits, axis=1) - diag
    cols = ops.logsumexp(logits, axis=0) - diag
    return 0.5 * (ops.mean(rows) + ops.mean(cols))


_LOSSES = {"sigmoid": sigmoid_contrastive_loss, "softmax": softmax_contrastive_loss}


def l2_normalize(x, axis=-1, epsilon=1e-6):
    """``x / max(|x|, eps)`` in float32."""
    x = ops.cast(x, "float32")
    return x * ops.rsqrt(ops.maximum(ops.sum(x * x, axis=axis, keepdims=True), epsilon**2))


# ---------------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package="keras_jepa")
class MixtureTokenEncoder(keras.layers.Layer):
    """A :class:`~keras_jepa.models.VisionTransformer` with ``K`` learnable tokens appended.

    Runs the ViT's own patch embedding, sin-cos positions and blocks on
    ``[patch tokens, mixture tokens]`` (the mixture tokens get no position) and returns the
    final-norm outputs of the ``K`` mixture tokens, ``(B, K, D)``. The wrapped ViT is
    unchanged (its weights, names and default call keep working) and lives in ``encoder``.

    Args:
        encoder: an image ``VisionTransformer`` (sin-cos positions) or its config.
        num_mixture_tokens: ``K``.
        init_std: std of the normal init of the tokens (default 1). The blocks are
            pre-norm, so a small init (0.02, like the other weights) lets the attention
            read-out dominate the tokens' residual stream: all ``K`` tokens then attend
            alike, come out nearly equal, and the mixing has nothing to choose from.

    Example:

    >>> import numpy as np
    >>> vit = VisionTransformer(image_size=16, patch_size=8, hidden_dim=16, depth=1, num_heads=2)
    >>> tuple(MixtureTokenEncoder(vit, 3)(np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 3, 16)
    """

    def __init__(self, encoder, num_mixture_tokens=8, init_std=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not isinstance(encoder, VisionTransformer):
            raise ValueError(
                f"encoder must be a keras_jepa VisionTransformer; got {type(encoder).__name__}."
            )
        if encoder.is_video or encoder.position_embedding != "sincos":
            raise ValueError(
                "MixtureTokenEncoder needs an image VisionTransformer with sin-cos positions; "
                f"got num_frames={encoder.num_frames}, "
                f"position_embedding={encoder.position_embedding!r}."
            )
        if int(num_mixture_tokens) < 1:
            raise ValueError(f"num_mixture_tokens must be >= 1; got {num_mixture_tokens!r}.")
        self.encoder = encoder
        self.num_mixture_tokens = int(num_mixture_tokens)
        self.init_std = float(init_std)

    @property
    def output_width(self):
        return self.encoder.output_width

    def build(self, input_shape=None):
        self.mixture_tokens = self.add_weight(
            name="mixture_tokens",
            shape=(1, self.num_mixture_tokens, self.encoder.hidden_dim),
            initializer=normal_init(self.init_std),
        )
        self.built = True

    def call(self, images, training=False):
        vit = self.encoder
        shape = tuple(images.shape)
        vit._check_input_shape(shape)
        x = vit.patch_embed(images)
        x = vit.pos_embed(x, grid_size=vit.grid_size(shape))
        tokens = ops.cast(self.mixture_tokens, x.dtype)
        tokens = ops.broadcast_to(tokens, (ops.shape(x)[0],) + tuple(tokens.shape[1:]))
        x = ops.concatenate([x, tokens], axis=1)
        for block in vit.blocks:
            x = block(x, training=training)
        if vit.norm is not None:
            x = vit.norm(x)
        return x[:, -self.num_mixture_tokens :]

    def compute_output_shape(self, images_shape):
        return (images_shape[0], self.num_mixture_tokens, self.output_width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "num_mixture_tokens": self.num_mixture_tokens,
                "init_std": self.init_std,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_jepa")
class MixtureCrossAttention(keras.layers.Layer):
    """Llip's mixing: caption queries, mixture-token keys/values, no caption residual.

    ``prepare(tokens)`` projects the ``(B, K, D)`` mixture tokens once per image to keys
    ``(B, K, H, d)`` and output-projected values ``(B, H, K, E)``; ``scores(prepared,
    texts)`` returns the cosine similarity of every image, conditioned on every text, with
    that text: ``(B, T)``. Images and texts are independent batches (all pairs).

    Args:
        output_dim: ``E``, the joint embedding width (the text embedding width).
        num_heads: mixing heads (unverified against the paper; default 4).
        key_dim: total query/key/value width (``None``: ``output_dim``).
        temperature: ``tau``; the logits are ``q.k / (tau * sqrt(d_head))``, so 1 is
            standard attention, larger is smoother (unverified default 1).
        chunk_size: texts per chunk in ``scores`` (static; ``None``: all at once).
        init_std: std of a normal kernel init; ``None`` (default) uses Glorot-uniform.
            With the ViT's 0.02 normal init the query-key logits start near 0, their
            gradients are products of two tiny factors, and the mixing stays uniform
            (measured: Llip then never leaves the chance-level plateau at tiny scale).

    Example:

    >>> import numpy as np
    >>> mix = MixtureCrossAttention(output_dim=8, num_heads=2)
    >>> mix.build((None, 3, 16))
    >>> prepared = mix.prepare(np.random.rand(2, 3, 16).astype("float32"))
    >>> tuple(mix.scores(prepared, np.random.rand(5, 8).astype("float32")).shape)
    (2, 5)
    """

    def __init__(self, output_dim, num_heads=4, key_dim=None, temperature=1.0,
                 chunk_size=256, init_std=None, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = int(output_dim)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim or output_dim)
        if self.key_dim % self.num_heads:
            raise ValueError(
                f"key_dim={self.key_dim} is not divisible by num_heads={self.num_heads}."
            )
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0; got {temperature!r}.")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}.")
        self.temperature = float(temperature)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.init_std = None if init_std is None else float(init_std)
        self.head_dim = self.key_dim // self.num_heads

    def build(self, tokens_shape):
        width = int(tokens_shape[-1])
        init = "glorot_uniform" if self.init_std is None else normal_init(self.init_std)
        common = dict(kernel_initializer=init, dtype=self.dtype_policy)
        self.query = keras.layers.Dense(self.key_dim, name="query", **common)
        self.query.build((None, self.output_dim))
        self.key = keras.layers.Dense(self.key_dim, name="key", **common)
        self.key.build((None, width))
        self.value = keras.layers.Dense(self.key_dim, name="value", **common)
        self.value.build((None, width))
        self.proj = keras.layers.Dense(self.output_dim, name="proj", **common)
        self.proj.build((None, self.key_dim))
        self.built = True

    def _split(self, x):
        return ops.reshape(x, tuple(ops.shape(x)[:-1]) + (self.num_heads, self.head_dim))

    def prepare(self, tokens):
        """Keys ``(B, K, H, d)`` and values through the output projection ``(B, H, K, E)``."""
        keys = self._split(self.key(tokens))
        values = self._split(self.value(tokens))
        kernel = ops.reshape(
            ops.cast(self.proj.kernel, values.dtype),
            (self.num_heads, self.head_dim, self.output_dim),
        )
        return keys, ops.einsum("bkhd,hde->bhke", values, kernel)

    def queries(self, texts):
        """Per-head queries ``(T, H, d)`` from (normalised) text embeddings ``(T, E)``."""
        return self._split(self.query(ops.cast(texts, self.compute_dtype)))

    def weights_for(self, keys, queries):
        """Mixing weights ``(B, T, H, K)`` (float32) of images' keys for texts' queries."""
        logits = ops.einsum("thd,bkhd->bthk", queries, keys)
        scale = 1.0 / (self.temperature * math.sqrt(self.head_dim))
        return ops.softmax(ops.cast(logits, "float32") * scale, axis=-1)

    def mix(self, prepared, queries):
        """Contextualised image vectors ``(B, T, E)`` (float32, not normalised)."""
        keys, values = prepared
        alpha = self.weights_for(keys, queries)
        mixed = ops.einsum("bthk,bhke->bte", alpha, ops.cast(values, "float32"))
        return mixed + ops.cast(self.proj.bias, "float32")

    def scores(self, prepared, texts, chunk_size="default"):
        """Cosine ``<z_{x_b|y_t}, z_{y_t}>`` for all pairs, ``(B, T)`` float32.

        ``texts``: ``(T, E)`` L2-normalised text embeddings. Texts are processed
        ``chunk_size`` at a time (default: the layer's ``chunk_size``).
        """
        chunk = self.chunk_size if chunk_size == "default" else chunk_size
        texts = ops.cast(texts, "float32")
        num_texts = ops.shape(texts)[0]

        def score_chunk(args):
            q, t = args
            z = l2_normalize(self.mix(prepared, q))
            return ops.einsum("bte,te->bt", z, t)

        queries = self.queries(texts)
        if chunk is None or (isinstance(num_texts, int) and num_texts <= chunk):
            return score_chunk((queries, texts))
        # Pad the texts to whole chunks with (chunk - 1) zero rows, then cut.
        num_chunks = (num_texts + chunk - 1) // chunk
        padded = num_chunks * chunk
        q_pad = ops.zeros((chunk - 1,) + tuple(queries.shape[1:]), queries.dtype)
        t_pad = ops.zeros((chunk - 1, texts.shape[1]), texts.dtype)
        q = ops.concatenate([queries, q_pad], axis=0)[:padded]
        t = ops.concatenate([texts, t_pad], axis=0)[:padded]
        q = ops.reshape(q, (-1, chunk) + tuple(queries.shape[1:]))
        t = ops.reshape(t, (-1, chunk, texts.shape[1]))
        out = ops.map(score_chunk, (q, t))  # (num_chunks, B, chunk)
        out = ops.reshape(ops.transpose(out, (1, 0, 2)), (ops.shape(out)[1], -1))
        return out[:, :num_texts]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "temperature": self.temperature,
                "chunk_size": self.chunk_size,
                "init_std": self.init_std,
            }
        )
        return config


# ---------------------------------------------------------------------------------- models


class ImageTextModel(Backbone):
    """Shared machinery of the contrastive image-text models (not used directly).

    Inputs are dicts ``{"images": (B, H, W, C) float, "token_ids": (B, L) int}`` (pair ``i``
    is image ``i`` with caption ``i``). ``call`` returns ``{"image_tokens": (B, K, D),
    "text_embeddings": (B, E)}`` (unnormalised); ``compute_loss`` scores all ``B x B``
    pairs. Subclasses define ``scores(image_tokens, text_embeddings)`` and
    ``default_token_init_std`` (the init std of the appended tokens when
    ``token_init_std=None``). As
    :class:`~keras_jepa.models.Backbone` s they save and load as presets.
    """

    num_mixture_tokens = 1
    default_token_init_std = 1.0

    def __init__(self, image_encoder, text_encoder, embed_dim=None, loss="sigmoid",
                 logit_scale_init=None, logit_bias_init=None, max_logit_scale=100.0,
                 token_init_std=None, **kwargs):
        super().__init__(**kwargs)
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}; got {loss!r}.")
        if isinstance(image_encoder, dict):
            image_encoder = keras.saving.deserialize_keras_object(image_encoder)
        if isinstance(text_encoder, dict):
            text_encoder = keras.saving.deserialize_keras_object(text_encoder)
        if not isinstance(text_encoder, TextEncoder):
            raise ValueError(
                f"text_encoder must be a keras_jepa TextEncoder; got {type(text_encoder).__name__}."
            )
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.embed_dim = int(embed_dim or text_encoder.hidden_dim)
        self.loss_type = loss
        sigmoid = loss == "sigmoid"
        default_scale = SIGLIP_LOGIT_SCALE_INIT if sigmoid else CLIP_LOGIT_SCALE_INIT
        self.logit_scale_init = float(default_scale if logit_scale_init is None
                                      else logit_scale_init)
        self.logit_bias_init = float(SIGLIP_LOGIT_BIAS_INIT if logit_bias_init is None
                                     else logit_bias_init)
        self.max_logit_scale = None if max_logit_scale is None else float(max_logit_scale)
        self.token_init_std = float(self.default_token_init_std if token_init_std is None
                                    else token_init_std)
        common = dict(dtype=self.dtype_policy)
        self.vision_tower = MixtureTokenEncoder(
            image_encoder, self.num_mixture_tokens, init_std=self.token_init_std,
            name="vision_tower", **common
        )
        self.vision_tower.build(image_encoder.default_input_shape)
        self.text_projection = keras.layers.Dense(
            self.embed_dim, use_bias=False, kernel_initializer=normal_init(0.02),
            name="text_projection", **common,
        )
        self.text_projection.build((None, text_encoder.hidden_dim))
        self.logit_scale = self.add_weight(
            name="logit_scale", shape=(),
            initializer=keras.initializers.Constant(self.logit_scale_init),
        )
        # Softmax is shift-invariant: the bias is kept (for one weight layout) but frozen.
        self.logit_bias = self.add_weight(
            name="logit_bias", shape=(), trainable=sigmoid,
            initializer=keras.initializers.Constant(self.logit_bias_init if sigmoid else 0.0),
        )
        self._build_head()
        self.built = True

    def _build_head(self):
        raise NotImplementedError

    # ------------------------------------------------------------------ encoders

    def call(self, inputs, training=False):
        images, token_ids = _unpack(inputs)
        return {
            "image_tokens": self.vision_tower(images, training=training),
            "text_embeddings": self.text_projection(
                self.text_encoder(token_ids, training=training)
            ),
        }

    def encode_images(self, images, training=False):
        """The ``K`` visual tokens per image, ``(B, K, D)`` (computed once per image)."""
        return self.vision_tower(images, training=training)

    def encode_texts(self, token_ids, training=False):
        """L2-normalised text embeddings ``(T, E)``, float32."""
        return l2_normalize(self.text_projection(self.text_encoder(token_ids, training=training)))

    def scores(self, image_tokens, text_embeddings):
        """Cosine similarity of every image with every text, ``(B, T)`` float32.

        ``text_embeddings`` must be L2-normalised (``encode_texts``)."""
        raise NotImplementedError

    def scale_and_bias(self):
        scale = ops.exp(ops.cast(self.logit_scale, "float32"))
        if self.max_logit_scale is not None:
            scale = ops.minimum(scale, self.max_logit_scale)
        return scale, ops.cast(self.logit_bias, "float32")

    def logits(self, image_tokens, text_embeddings):
        """``t * cos + b`` for all pairs (``b = 0`` for the softmax loss), ``(B, T)``."""
        scale, bias = self.scale_and_bias()
        return scale * self.scores(image_tokens, text_embeddings) + bias

    # ------------------------------------------------------------------ training

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        image_tokens = gather_across_replicas(y_pred["image_tokens"])
        texts = l2_normalize(gather_across_replicas(y_pred["text_embeddings"]))
        logits = self.logits(image_tokens, texts)
        loss = _LOSSES[self.loss_type](logits)
        self._update_diagnostics(image_tokens, texts)
        return loss + sum(self.losses) if self.losses else loss

    def _update_diagnostics(self, image_tokens, texts):
        pass

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
                "text_encoder": keras.saving.serialize_keras_object(self.text_encoder),
                "embed_dim": self.embed_dim,
                "loss": self.loss_type,
                "logit_scale_init": self.logit_scale_init,
                "logit_bias_init": self.logit_bias_init,
                "max_logit_scale": self.max_logit_scale,
                "token_init_std": self.token_init_std,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_jepa")
class SigLIP(ImageTextModel):
    """SigLIP-style baseline: one appended token of the ViT, a linear image projection,
    the sigmoid loss (``t' = log 10``, ``b = -10``).

    The image vector is ``image_projection(h_1)`` (a class token; SigLIP itself pools with
    an attention head, CLIP with a class token). Use :class:`CLIP` for the softmax loss.

    Args:
        image_encoder: an image ``VisionTransformer`` (sin-cos positions).
        text_encoder: a :class:`~keras_jepa.models.TextEncoder`.
        embed_dim: joint embedding width (default: the text width).
        loss: ``"sigmoid"`` (default) or ``"softmax"``.
        logit_scale_init: initial ``t'`` (``t = exp(t')``); default ``log 10`` (sigmoid),
            ``log(1/0.07)`` (softmax).
        logit_bias_init: initial ``b`` for the sigmoid loss (default -10).
        max_logit_scale: upper clip of ``t`` (CLIP's 100); ``None``: no clip.
        token_init_std: std of the normal init of the appended class token (default
            0.02, like the ViT's other weights; a unit-scale token dominates its own
            residual stream and reads little of the image: measured at tiny scale, std 1
            and 0.2 gave SigLIP lower retrieval than 0.02, see ``keras_jepa.programs.train_llip``).

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import TextEncoder, VisionTransformer
    >>> vit = VisionTransformer(image_size=16, patch_size=8, hidden_dim=16, depth=1, num_heads=2)
    >>> text = TextEncoder(vocabulary_size=10, max_length=4, hidden_dim=16, depth=1, num_heads=2)
    >>> model = SigLIP(vit, text)
    >>> out = model({"images": np.zeros((2, 16, 16, 3), "float32"),
    ...              "token_ids": np.array([[1, 4, 2, 0], [1, 5, 2, 0]], "int32")})
    >>> tuple(out["image_tokens"].shape), tuple(out["text_embeddings"].shape)
    ((2, 1, 16), (2, 16))
    """

    default_token_init_std = 0.02

    def _build_head(self):
        self.image_projection = keras.layers.Dense(
            self.embed_dim, kernel_initializer=normal_init(0.02), name="image_projection",
            dtype=self.dtype_policy,
        )
        self.image_projection.build((None, self.vision_tower.output_width))

    def image_embeddings(self, image_tokens):
        """L2-normalised image vectors ``(B, E)`` (independent of any text)."""
        return l2_normalize(self.image_projection(image_tokens[:, 0]))

    def scores(self, image_tokens, text_embeddings):
        return ops.matmul(self.image_embeddings(image_tokens),
                          ops.transpose(ops.cast(text_embeddings, "float32")))


@keras.saving.register_keras_serializable(package="keras_jepa")
class CLIP(SigLIP):
    """:class:`SigLIP` with CLIP's softmax loss (``t' = log(1/0.07)``, no bias).

    Example:

    >>> from keras_jepa.models import TextEncoder, VisionTransformer
    >>> vit = VisionTransformer(image_size=16, patch_size=8, hidden_dim=16, depth=1, num_heads=2)
    >>> text = TextEncoder(vocabulary_size=10, max_length=4, hidden_dim=16, depth=1, num_heads=2)
    >>> CLIP(vit, text).loss_type
    'softmax'
    """

    def __init__(self, image_encoder, text_encoder, loss="softmax", **kwargs):
        super().__init__(image_encoder, text_encoder, loss=loss, **kwargs)


@keras.saving.register_keras_serializable(package="keras_jepa")
class Llip(ImageTextModel):
    """Llip: ``K`` mixture tokens mixed by caption-conditioned cross-attention, sigmoid loss.

    See the module docstring for the equations and for which settings are unverified.
    Training metrics (matched pairs, all heads): ``mixing_entropy`` (entropy of the
    mixing weights over the ``K`` tokens divided by ``log K``: 0 = one token, 1 = uniform),
    ``tokens_used`` (``exp`` of the entropy of the mean usage: the effective number of
    tokens the captions pick, from 1 to ``K``; close to 1 means collapse onto one token)
    and ``token_usage_max`` (the largest mean weight of one token). ``mixing_diagnostics``
    returns the per-token usage.

    Args:
        image_encoder: an image ``VisionTransformer`` (sin-cos positions).
        text_encoder: a :class:`~keras_jepa.models.TextEncoder`.
        num_mixture_tokens: ``K`` (default 8; K=1 reduces to SigLIP, see the module doc).
        mixing_heads: heads of the mixing cross-attention (unverified; default 4).
        mixing_dim: query/key/value width of the mixing (default ``embed_dim``).
        mixing_temperature: ``tau`` over the usual ``sqrt(d_head)`` (unverified; 1).
        pair_chunk_size: captions per chunk when scoring all pairs (static).
        token_init_std: std of the normal init of the ``K`` mixture tokens (default 1;
            see :class:`MixtureTokenEncoder`: with 0.02 the tokens come out nearly equal
            and the mixing stays near uniform; measured at tiny scale, 0.02 and 0.2 gave
            Llip lower retrieval than 1). :class:`SigLIP` defaults to 0.02 instead: each
            model gets its best value from the same grid.
        embed_dim, loss, logit_scale_init, logit_bias_init, max_logit_scale: as
            :class:`SigLIP`; ``loss="softmax"`` is the CLIP-loss ablation.

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import TextEncoder, VisionTransformer
    >>> vit = VisionTransformer(image_size=16, patch_size=8, hidden_dim=16, depth=1, num_heads=2)
    >>> text = TextEncoder(vocabulary_size=10, max_length=4, hidden_dim=16, depth=1, num_heads=2)
    >>> model = Llip(vit, text, num_mixture_tokens=4, mixing_heads=2)
    >>> tokens = model.encode_images(np.zeros((2, 16, 16, 3), "float32"))
    >>> texts = model.encode_texts(np.array([[1, 4, 2, 0]] * 3, "int32"))
    >>> tuple(tokens.shape), tuple(model.scores(tokens, texts).shape)
    ((2, 4, 16), (2, 3))
    """

    def __init__(self, image_encoder, text_encoder, num_mixture_tokens=8, mixing_heads=4,
                 mixing_dim=None, mixing_temperature=1.0, pair_chunk_size=256, **kwargs):
        self.num_mixture_tokens = int(num_mixture_tokens)
        self.mixing_heads = int(mixing_heads)
        self.mixing_dim = None if mixing_dim is None else int(mixing_dim)
        self.mixing_temperature = float(mixing_temperature)
        self.pair_chunk_size = None if pair_chunk_size is None else int(pair_chunk_size)
        super().__init__(image_encoder, text_encoder, **kwargs)
        self.entropy_tracker = keras.metrics.Mean(name="mixing_entropy")
        self.tokens_used_tracker = keras.metrics.Mean(name="tokens_used")
        self.usage_max_tracker = keras.metrics.Mean(name="token_usage_max")

    def _build_head(self):
        self.mixer = MixtureCrossAttention(
            self.embed_dim, num_heads=self.mixing_heads, key_dim=self.mixing_dim,
            temperature=self.mixing_temperature, chunk_size=self.pair_chunk_size,
            name="mixer", dtype=self.dtype_policy,
        )
        self.mixer.build((None, self.num_mixture_tokens, self.vision_tower.output_width))

    def prepare(self, image_tokens):
        """Per-image keys and projected values for the mixer (reuse them for every text)."""
        return self.mixer.prepare(image_tokens)

    def scores(self, image_tokens, text_embeddings, chunk_size="default"):
        return self.mixer.scores(self.prepare(image_tokens), text_embeddings, chunk_size)

    def contextual_embeddings(self, image_tokens, text_embeddings):
        """L2-normalised ``z_{x_b|y_t}``, ``(B, T, E)`` float32 (unchunked: small inputs)."""
        queries = self.mixer.queries(text_embeddings)
        return l2_normalize(self.mixer.mix(self.prepare(image_tokens), queries))

    def matched_weights(self, image_tokens, text_embeddings):
        """Mixing weights of image ``i`` for its own caption ``i``: ``(B, H, K)``."""
        keys, _ = self.mixer.prepare(image_tokens)
        queries = self.mixer.queries(text_embeddings)
        logits = ops.einsum("bhd,bkhd->bhk", queries, keys)
        scale = 1.0 / (self.mixer.temperature * math.sqrt(self.mixer.head_dim))
        return ops.softmax(ops.cast(logits, "float32") * scale, axis=-1)

    def mixing_diagnostics(self, image_tokens, text_embeddings):
        """``{"entropy": normalised mean entropy, "usage": (K,) mean weight per token,
        "tokens_used": exp(entropy of usage)}`` for matched pairs."""
        alpha = self.matched_weights(image_tokens, text_embeddings)
        k = self.num_mixture_tokens
        entropy = -ops.sum(alpha * ops.log(alpha + 1e-9), axis=-1)
        entropy = ops.mean(entropy) / (math.log(k) if k > 1 else 1.0)
        usage = ops.mean(ops.reshape(alpha, (-1, k)), axis=0)
        tokens_used = ops.exp(-ops.sum(usage * ops.log(usage + 1e-9)))
        return {"entropy": entropy, "usage": usage, "tokens_used": tokens_used}

    def _update_diagnostics(self, image_tokens, texts):
        diag = self.mixing_diagnostics(ops.stop_gradient(image_tokens), ops.stop_gradient(texts))
        self.entropy_tracker.update_state(diag["entropy"])
        self.tokens_used_tracker.update_state(diag["tokens_used"])
        self.usage_max_tracker.update_state(ops.max(diag["usage"]))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_mixture_tokens": self.num_mixture_tokens,
                "mixing_heads": self.mixing_heads,
                "mixing_dim": self.mixing_dim,
                "mixing_temperature": self.mixing_temperature,
                "pair_chunk_size": self.pair_chunk_size,
            }
        )
        return config


def _unpack(inputs):
    if not isinstance(inputs, dict) or not {"images", "token_ids"} <= set(inputs):
        keys = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ValueError(
            'Image-text models take a dict {"images": (B, H, W, C), "token_ids": (B, L)}; '
            f"got {keys}."
        )
    return inputs["images"], inputs["token_ids"]


def siglip_from_llip_weights(llip, siglip):
    """Copies a K=1 ``Llip``'s weights into a ``SigLIP`` of the same towers, folding the
    mixer's value and output projections into SigLIP's image projection (the K=1 identity
    of the module docstring). Returns ``siglip``.
    """
    if llip.num_mixture_tokens != 1:
        raise ValueError(
            f"Only a K=1 Llip reduces to SigLIP; got num_mixture_tokens={llip.num_mixture_tokens}."
        )
    for target, source in ((siglip.vision_tower, llip.vision_tower),
                           (siglip.text_encoder, llip.text_encoder),
                           (siglip.text_projection, llip.text_projection)):
        target.set_weights(source.get_weights())
    siglip.logit_scale.assign(llip.logit_scale)
    siglip.logit_bias.assign(llip.logit_bias)
    wv = keras.ops.convert_to_numpy(llip.mixer.value.kernel).astype("float64")
    bv = keras.ops.convert_to_numpy(llip.mixer.value.bias).astype("float64")
    wo = keras.ops.convert_to_numpy(llip.mixer.proj.kernel).astype("float64")
    bo = keras.ops.convert_to_numpy(llip.mixer.proj.bias).astype("float64")
    siglip.image_projection.set_weights([(wv @ wo).astype("float32"),
                                         (bv @ wo + bo).astype("float32")])
    return siglip


__all__ = [
    "CLIP", "Llip", "MixtureCrossAttention", "MixtureTokenEncoder", "SigLIP",
    "sigmoid_contrastive_loss", "siglip_from_llip_weights", "softmax_contrastive_loss",
]
