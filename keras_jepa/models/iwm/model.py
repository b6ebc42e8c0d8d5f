"""Image World Models (IWM; Garrido et al., 2024): a JEPA whose predictor learns how
photometric transformations act in latent space, and its predictor finetuning.

Pretraining (``IWM``, trained with ``model.fit`` on ``keras_jepa.models.iwm.views.PairedViewDataset``
batches): the context encoder sees the *source* view with the union of 4 target blocks
removed; the EMA target encoder sees the *target* view (same geometry, other colour jitter,
no destructive augmentation); the predictor, given the source tokens, the masked positions
and the **action** (target minus source jitter parameters plus the source-only flags, see
``keras_jepa.models.iwm.views.action_vector``), predicts the target view's layer-normed features at the
masked positions. The loss is the mean squared error (the paper's L2; ``loss="smooth_l1"``
gives I-JEPA's).

Conditioning of the predictor (``ConditionedPredictor``):

* ``"feature"`` (the paper's default): the action is concatenated to every position-embedded
  mask token and a 3-layer MLP (``action_fc1..3``) maps the result back to the predictor
  width;
* ``"sequence"``: one extra token per action parameter, ``a_k * action_kernel[k] +
  action_bias[k]`` (a separate linear projection per parameter), joins the sequence;
* ``"none"``: the predictor ignores the action (an I-JEPA predictor on paired views); it
  cannot tell which target transformation it must predict, so its MRR stays at chance.

Recipes (``IWM_RECIPES``): the invariant ``iwm_inv_12x384`` (predictor depth 12, width 384,
colour jitter only) and the equivariant ``iwm_equi_18x384`` (depth 18, width 384, with the
source-only blur, grayscale and solarize), as in the paper's tables; ``iwm_tiny_cpu`` is a
CPU-sized version of the equivariant one.

Leveraging the world model (``IWMClassifier``): the frozen encoder's tokens go through the
pretrained predictor with the null action (predict the untransformed full image: every token
is context and every position a query), then an attentive head classifies them; the
predictor trains with a learning rate reduced by ``predictor_lr_scale`` (the paper: 1/10 of
a randomly initialised predictor's), see ``finetune_optimizer``.
"""

import keras
import numpy as np
from keras import ops

from keras_jepa.layers.token_ops import gather_tokens
from keras_jepa.models.jepa.base import JEPA, resolve_encoder, smooth_l1
from keras_jepa.models.jepa.predictor import JEPAPredictor
from keras_jepa.training.optimizers import JEPAAdamW

CONDITIONING = ("feature", "sequence", "none")
#: Length of ``keras_jepa.models.iwm.views.action_vector`` (4 jitter differences + 3 flags).
DEFAULT_ACTION_DIM = 7

IWM_RECIPES = {
    "iwm_inv_12x384": {
        "description": "IWM invariant predictor, depth 12 x width 384, colour jitter only",
        "predictor_depth": 12, "predictor_dim": 384, "conditioning": "feature",
        "views": dict(blur_probability=0.0, grayscale_probability=0.0,
                      solarize_probability=0.0),
    },
    "iwm_equi_18x384": {
        "description": "IWM equivariant predictor, depth 18 x width 384, jitter + "
                       "source-only blur / grayscale / solarize",
        "predictor_depth": 18, "predictor_dim": 384, "conditioning": "feature",
        "views": dict(blur_probability=0.2, grayscale_probability=0.2,
                      solarize_probability=0.1),
    },
    "iwm_tiny_cpu": {
        "description": "CPU-sized equivariant IWM: predictor depth 2 x width 64",
        "predictor_depth": 2, "predictor_dim": 64, "predictor_heads": 4,
        "conditioning": "feature",
        "views": dict(blur_probability=0.2, grayscale_probability=0.2,
                      solarize_probability=0.1),
    },
}


def iwm_recipe(name):
    """A copy of the named recipe of ``IWM_RECIPES``.

    Example:

    >>> iwm_recipe("iwm_equi_18x384")["predictor_depth"]
    18
    """
    if name not in IWM_RECIPES:
        raise ValueError(f"Unknown IWM recipe {name!r}; choose from {sorted(IWM_RECIPES)}.")
    recipe = dict(IWM_RECIPES[name])
    recipe["views"] = dict(recipe["views"])
    return recipe


@keras.saving.register_keras_serializable(package="keras_jepa")
class ConditionedPredictor(JEPAPredictor):
    """A ``JEPAPredictor`` that also takes an action vector per image.

    Called as ``predictor(context_tokens, context_indices, target_indices, action)`` with
    ``action`` of shape ``(B, action_dim)`` (``None``: the null action, zeros).

    Args:
        action_dim: length of the action vector (7 for ``keras_jepa.models.iwm.views.action_vector``).
        conditioning: ``"feature"``, ``"sequence"`` or ``"none"`` (module docstring).
        **kwargs: ``JEPAPredictor`` arguments (sin-cos positions only).

    Example:

    >>> import numpy as np
    >>> pred = ConditionedPredictor(grid_size=(4, 4), output_dim=32, hidden_dim=16,
    ...                             depth=1, num_heads=2, conditioning="sequence")
    >>> ctx, ctx_idx = np.zeros((2, 5, 32), "float32"), np.tile(np.arange(5), (2, 1))
    >>> tgt_idx = np.tile(np.arange(10, 13), (2, 1))
    >>> tuple(pred(ctx, ctx_idx, tgt_idx, np.ones((2, 7), "float32")).shape)
    (2, 3, 32)
    """

    def __init__(self, grid_size, output_dim, action_dim=DEFAULT_ACTION_DIM,
                 conditioning="feature", **kwargs):
        if conditioning not in CONDITIONING:
            raise ValueError(f"conditioning must be one of {CONDITIONING}; got {conditioning!r}.")
        if kwargs.get("position_embedding", "sincos") != "sincos":
            raise ValueError(
                "ConditionedPredictor supports position_embedding='sincos' only; got "
                f"{kwargs['position_embedding']!r}."
            )
        super().__init__(grid_size, output_dim, **kwargs)
        self.action_dim = int(action_dim)
        if self.action_dim < 1:
            raise ValueError(f"action_dim must be a positive int; got {action_dim!r}.")
        self.conditioning = conditioning

    def build(self, input_shape=None):
        super().build(input_shape)
        width = self.hidden_dim
        common = dict(dtype=self.dtype_policy)
        self.action_layers = []
        if self.conditioning == "feature":
            fan_in = width + self.action_dim
            for i in range(3):
                layer = keras.layers.Dense(width, name=f"action_fc{i + 1}", **common)
                layer.build((None, None, fan_in if i == 0 else width))
                self.action_layers.append(layer)
        elif self.conditioning == "sequence":
            self.action_kernel = self.add_weight(
                name="action_kernel", shape=(self.action_dim, width),
                initializer=keras.initializers.RandomNormal(stddev=self.init_std),
            )
            self.action_bias = self.add_weight(
                name="action_bias", shape=(self.action_dim, width), initializer="zeros",
            )
        self.built = True

    def call(self, context_tokens, context_indices, target_indices, action=None,
             training=False):
        """``(B, Kc, D)``, ``(B, Kc)``, ``(B, Kt)``, ``(B, A)`` -> ``(B, Kt, D)``."""
        x, queries, _ = self.embed_inputs(
            context_tokens, context_indices, target_indices, 0, training
        )
        batch, num_queries = ops.shape(x)[0], queries.shape[1]
        if action is None:
            action = ops.zeros((batch, self.action_dim), x.dtype)
        action = ops.cast(action, x.dtype)
        if action.shape[-1] != self.action_dim:
            raise ValueError(
                f"action must have {self.action_dim} values per image; got shape "
                f"{tuple(action.shape)}."
            )
        if self.conditioning == "feature":
            a = ops.broadcast_to(action[:, None, :], (batch, num_queries, self.action_dim))
            h = ops.concatenate([queries, a], axis=-1)
            for i, layer in enumerate(self.action_layers):
                h = layer(h)
                if i < len(self.action_layers) - 1:
                    h = ops.gelu(h, approximate=False)
            queries = h
            sequence = ops.concatenate([x, queries], axis=1)
        elif self.conditioning == "sequence":
            kernel = ops.cast(self.action_kernel, x.dtype)
            bias = ops.cast(self.action_bias, x.dtype)
            tokens = action[:, :, None] * kernel[None] + bias[None]
            sequence = ops.concatenate([x, tokens, queries], axis=1)
        else:
            sequence = ops.concatenate([x, queries], axis=1)
        return self.decode(sequence, num_queries, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"action_dim": self.action_dim, "conditioning": self.conditioning})
        return config


@keras.saving.register_keras_serializable(package="keras_jepa")
class IWM(JEPA):
    """Image World Model pretraining, trained with ``model.fit``.

    Inputs: a dict ``{"source": (B, H, W, C), "target": (B, H, W, C), "action": (B, A),
    "context_indices": (B, Kc), "target_indices": (B, Kt)}``, as
    ``keras_jepa.models.iwm.views.PairedViewDataset`` makes them. ``fit`` needs no labels.

    Args:
        encoder: ``VisionTransformer`` image encoder.
        predictor: a ``ConditionedPredictor``; by default built with width
            ``predictor_dim``, ``predictor_depth`` blocks, ``predictor_heads`` heads (default:
            the encoder's), ``conditioning`` and ``action_dim``.
        loss: ``"l2"`` (mean squared error, the paper) or ``"smooth_l1"`` (I-JEPA).
        ema_momentum, ema_steps: see ``JEPA``.

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=4, hidden_dim=32, depth=1,
    ...                         num_heads=2)
    >>> model = IWM(enc, predictor_dim=16, predictor_depth=1, ema_steps=100)
    >>> batch = {"source": np.zeros((2, 16, 16, 3), "float32"),
    ...          "target": np.zeros((2, 16, 16, 3), "float32"),
    ...          "action": np.zeros((2, 7), "float32"),
    ...          "context_indices": np.tile(np.arange(8), (2, 1)),
    ...          "target_indices": np.tile(np.arange(8, 12), (2, 1))}
    >>> tuple(model(batch)["predictions"].shape)
    (2, 4, 32)
    """

    def __init__(self, encoder, predictor=None, predictor_dim=384, predictor_depth=12,
                 predictor_heads=None, conditioning="feature",
                 action_dim=DEFAULT_ACTION_DIM, loss="l2", **kwargs):
        encoder = resolve_encoder(encoder)
        if loss not in ("l2", "smooth_l1"):
            raise ValueError(f"loss must be 'l2' or 'smooth_l1'; got {loss!r}.")
        if predictor is None:
            predictor = ConditionedPredictor(
                grid_size=encoder.grid_size(),
                output_dim=encoder.output_width,
                hidden_dim=predictor_dim,
                depth=predictor_depth,
                num_heads=predictor_heads or encoder.num_heads,
                sincos_order=encoder.sincos_order,
                layer_norm_epsilon=encoder.layer_norm_epsilon,
                action_dim=action_dim,
                conditioning=conditioning,
                name="predictor",
            )
        super().__init__(encoder, predictor, **kwargs)
        self.loss_name = loss

    @classmethod
    def from_recipe(cls, name, encoder, **overrides):
        """An ``IWM`` with the predictor of recipe ``name`` (``IWM_RECIPES``).

        Example:

        >>> from keras_jepa.models import VisionTransformer
        >>> enc = VisionTransformer(image_size=16, patch_size=4, hidden_dim=32, depth=1,
        ...                         num_heads=2)
        >>> IWM.from_recipe("iwm_tiny_cpu", enc, ema_steps=10).predictor.depth
        2
        """
        recipe = iwm_recipe(name)
        kwargs = {k: recipe[k] for k in ("predictor_depth", "predictor_dim",
                                         "predictor_heads", "conditioning") if k in recipe}
        kwargs.update(overrides)
        return cls(encoder, **kwargs)

    def call(self, inputs, training=False):
        context = ops.cast(inputs["context_indices"], "int32")
        targets = ops.cast(inputs["target_indices"], "int32")
        z = self.encoder(inputs["source"], token_indices=context, training=training)
        pred = self.predictor(z, context, targets, inputs["action"], training=training)
        return {"predictions": pred}

    def prediction_loss(self, x, y_pred):
        h = gather_tokens(self.target_features(x["target"]), x["target_indices"])
        pred = y_pred["predictions"]
        if self.loss_name == "smooth_l1":
            return smooth_l1(pred, h)
        return ops.mean(ops.square(ops.cast(pred, "float32") - h))

    def predict_latents(self, source, action, context_indices, target_indices):
        """Predicted target features ``(B, Kt, D)`` for a source batch and its actions
        (inference: no dropout, no StoP noise)."""
        context = ops.cast(context_indices, "int32")
        z = self.encoder(source, token_indices=context, training=False)
        return self.predictor(z, context, ops.cast(target_indices, "int32"), action,
                              training=False)

    def get_config(self):
        config = super().get_config()
        config["loss"] = self.loss_name
        return config


@keras.saving.register_keras_serializable(package="keras_jepa")
class IWMClassifier(keras.Model):
    """Predictor finetuning: frozen encoder -> predictor (null action) -> attentive head.

    The encoder's tokens of the whole image are the predictor's context and every position
    is a query, with the null action (zeros): the predictor "predicts the untransformed
    image" and its outputs ``(B, N, D)`` are pooled by an ``AttentiveClassifier``
    (``keras_jepa.evaluation.attentive_probe``). With ``use_predictor=False`` the head sits
    on the encoder's tokens (the encoder-only baseline). The encoder is frozen; train with
    :func:`finetune_optimizer` for the paper's reduced predictor learning rate.

    Args:
        encoder: a ``VisionTransformer`` (typically ``iwm.target_encoder``); a copy is made
            and frozen.
        predictor: a ``ConditionedPredictor`` (typically ``iwm.predictor``); a copy is
            made, so finetuning does not change the pretrained model.
        num_classes: classes of the head.
        use_predictor: route the tokens through the predictor.
        head_heads: attention heads of the head (default: the encoder's).

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=4, hidden_dim=32, depth=1,
    ...                         num_heads=2)
    >>> iwm = IWM(enc, predictor_dim=16, predictor_depth=1, ema_steps=10)
    >>> clf = IWMClassifier(iwm.target_encoder, iwm.predictor, num_classes=3)
    >>> tuple(clf(np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 3)
    """

    def __init__(self, encoder, predictor, num_classes, use_predictor=True, head_heads=None,
                 **kwargs):
        from keras_jepa.layers.attentive_pooler import AttentiveClassifier

        super().__init__(**kwargs)
        encoder = resolve_encoder(encoder)
        if isinstance(predictor, dict):
            predictor = keras.saving.deserialize_keras_object(predictor)
        if not isinstance(predictor, ConditionedPredictor):
            raise ValueError(
                f"predictor must be a ConditionedPredictor; got {type(predictor).__name__}."
            )
        self.encoder = type(encoder).from_config(
            {**encoder.get_config(), "name": "encoder", "trainable": False}
        )
        self.encoder.set_weights(encoder.get_weights())
        self.encoder.trainable = False
        for variable in self.encoder.weights:
            variable.trainable = False
        self.predictor = type(predictor).from_config(
            {**predictor.get_config(), "name": "predictor"}
        )
        self.predictor.build()
        self.predictor.set_weights(predictor.get_weights())
        self.num_classes = int(num_classes)
        self.use_predictor = bool(use_predictor)
        self.head_heads = head_heads
        self.head = AttentiveClassifier(
            num_classes=self.num_classes, embed_dim=encoder.output_width,
            num_heads=head_heads or encoder.num_heads, name="head",
        )
        self.num_tokens = int(np.prod(encoder.grid_size()))
        self.built = True

    def features(self, images, training=False):
        """Tokens fed to the head: predictor outputs (or encoder tokens) ``(B, N, D)``."""
        z = ops.stop_gradient(self.encoder(images, training=False))
        if not self.use_predictor:
            return z
        batch = ops.shape(z)[0]
        ids = ops.broadcast_to(ops.arange(self.num_tokens, dtype="int32")[None],
                               (batch, self.num_tokens))
        return self.predictor(z, ids, ids, None, training=training)

    def call(self, images, training=False):
        return self.head(self.features(images, training=training), training=training)

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "predictor": keras.saving.serialize_keras_object(self.predictor),
            "num_classes": self.num_classes,
            "use_predictor": self.use_predictor,
            "head_heads": self.head_heads,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_jepa")
class GroupLearningRateAdamW(JEPAAdamW):
    """``JEPAAdamW`` with a learning-rate multiplier per top-level sub-model.

    ``lr_multipliers`` maps a component of a variable's path (e.g. ``"predictor"`` for
    ``"predictor/predictor_blocks_0/..."`` or ``"model/predictor/..."``) to a factor of the
    learning rate; the first matching key in the path wins (the decoupled weight decay keeps
    the base rate).

    Example:

    >>> opt = GroupLearningRateAdamW(learning_rate=1e-3, lr_multipliers={"predictor": 0.1})
    >>> opt.lr_multipliers
    {'predictor': 0.1}
    """

    def __init__(self, lr_multipliers=None, **kwargs):
        super().__init__(**kwargs)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        groups = {}
        for grad, variable in zip(grads, trainable_variables):
            parts = variable.path.split("/")
            factor = next((self.lr_multipliers[p] for p in parts if p in self.lr_multipliers),
                          1.0)
            groups.setdefault(factor, ([], []))
            groups[factor][0].append(grad)
            groups[factor][1].append(variable)
        for factor, (group_grads, group_vars) in groups.items():
            lr = learning_rate if factor == 1.0 else learning_rate * factor
            super()._backend_update_step(group_grads, group_vars, lr)

    def get_config(self):
        config = super().get_config()
        config["lr_multipliers"] = dict(self.lr_multipliers)
        return config


def finetune_optimizer(learning_rate=1e-3, predictor_lr_scale=0.1, weight_decay=0.05,
                       **kwargs):
    """AdamW for :class:`IWMClassifier` with the predictor at ``predictor_lr_scale`` times
    the learning rate (the paper: 1/10 of a randomly initialised predictor's rate).

    Example:

    >>> finetune_optimizer(1e-3).lr_multipliers
    {'predictor': 0.1}
    """
    return GroupLearningRateAdamW(
        learning_rate=learning_rate, weight_decay=weight_decay,
        lr_multipliers={"predictor": predictor_lr_scale}, **kwargs,
    )
