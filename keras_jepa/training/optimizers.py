"""Schedules and the AdamW variant of the JEPA recipes.

All schedules are functions of the optimizer's iteration counter, so a resumed run
(``BackupAndRestore``, ``load_weights`` with the optimizer) continues them exactly.

The official schedulers step *before* each update, so the value used by update ``k``
(0-based optimizer iteration) is the scheduler's value at step ``k + 1``; the classes here
take that into account (``offset=1``).
"""

import math

import keras
from keras import ops


def _step(step, offset):
    return ops.cast(step, "float32") + float(offset)


@keras.saving.register_keras_serializable(package="keras_jepa")
class WarmupCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup ``start -> ref`` over ``warmup_steps``, then cosine ``ref -> final``
    over the remaining ``total_steps - warmup_steps``, floored at ``final`` (I-JEPA, V-JEPA).

    With ``cosine=False`` the value stays at ``ref`` after warmup (V-JEPA 2 pretraining).

    Example:

    >>> s = WarmupCosineSchedule(2e-4, 1e-3, 1e-6, warmup_steps=10, total_steps=100)
    >>> round(float(s(9)), 6), round(float(s(99)), 6)
    (0.001, 1e-06)
    """

    def __init__(self, start_value, ref_value, final_value, warmup_steps, total_steps,
                 cosine=True, offset=1):
        if total_steps <= 0 or warmup_steps < 0 or warmup_steps > total_steps:
            raise ValueError(
                f"Need 0 <= warmup_steps <= total_steps and total_steps > 0; got "
                f"warmup_steps={warmup_steps}, total_steps={total_steps}."
            )
        self.start_value = float(start_value)
        self.ref_value = float(ref_value)
        self.final_value = float(final_value)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.cosine = bool(cosine)
        self.offset = int(offset)

    def __call__(self, step):
        s = _step(step, self.offset)
        warm = max(self.warmup_steps, 1)
        warmup = self.start_value + s / warm * (self.ref_value - self.start_value)
        if self.cosine:
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = ops.minimum((s - self.warmup_steps) / span, 1.0)
            after = self.final_value + (self.ref_value - self.final_value) * 0.5 * (
                1.0 + ops.cos(math.pi * progress)
            )
            after = ops.maximum(after, self.final_value)
        else:
            after = ops.convert_to_tensor(self.ref_value, "float32")
        return ops.where(s < self.warmup_steps, warmup, after)

    def get_config(self):
        return {
            "start_value": self.start_value, "ref_value": self.ref_value,
            "final_value": self.final_value, "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps, "cosine": self.cosine, "offset": self.offset,
        }


@keras.saving.register_keras_serializable(package="keras_jepa")
class LinearDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``ref + min(s / total, 1) * (final - ref)``: the V-JEPA 2 cooldown's learning rate,
    a straight line from ``ref`` to ``final`` over ``total_steps`` with no warmup (official
    ``LinearDecaySchedule``; there ``total = ipe_scale * epochs * ipe`` with ``ipe_scale``
    1.25, so the run stops at 80% of the line). Past ``total_steps`` it stays at ``final``
    (the official line would continue below it; no official run gets there).

    Example:

    >>> s = LinearDecaySchedule(5.25e-4, 1e-6, total_steps=100)
    >>> round(float(s(0)), 8), round(float(s(49)), 8), round(float(s(99)), 8)
    (0.00051976, 0.000263, 1e-06)
    """

    def __init__(self, ref_value, final_value, total_steps, offset=1):
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0; got {total_steps}.")
        self.ref_value = float(ref_value)
        self.final_value = float(final_value)
        self.total_steps = int(total_steps)
        self.offset = int(offset)

    def __call__(self, step):
        progress = ops.minimum(_step(step, self.offset) / self.total_steps, 1.0)
        return self.ref_value + progress * (self.final_value - self.ref_value)

    def get_config(self):
        return {
            "ref_value": self.ref_value, "final_value": self.final_value,
            "total_steps": self.total_steps, "offset": self.offset,
        }


@keras.saving.register_keras_serializable(package="keras_jepa")
class CosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``final + (ref - final) * 0.5 * (1 + cos(pi * s / total))``, clamped between the two
    values: the official weight-decay schedule (0.04 -> 0.4, i.e. it *increases*)."""

    def __init__(self, ref_value, final_value, total_steps, offset=1):
        self.ref_value = float(ref_value)
        self.final_value = float(final_value)
        self.total_steps = int(total_steps)
        self.offset = int(offset)

    def __call__(self, step):
        s = _step(step, self.offset)
        progress = ops.minimum(s / max(self.total_steps, 1), 1.0)
        value = self.final_value + (self.ref_value - self.final_value) * 0.5 * (
            1.0 + ops.cos(math.pi * progress)
        )
        lo, hi = sorted((self.ref_value, self.final_value))
        return ops.clip(value, lo, hi)

    def get_config(self):
        return {
            "ref_value": self.ref_value, "final_value": self.final_value,
            "total_steps": self.total_steps, "offset": self.offset,
        }


@keras.saving.register_keras_serializable(package="keras_jepa")
class JEPAAdamW(keras.optimizers.AdamW):
    """AdamW as the JEPA recipes use it.

    * ``weight_decay`` may be a float or a schedule of the iteration counter
      (``CosineSchedule`` for I-JEPA / V-JEPA); decay is decoupled:
      ``w <- w - lr * wd * w`` before the Adam update, as in PyTorch's AdamW.
    * Biases and every 1-D weight (LayerNorm scales) get no weight decay, as the official
      parameter groups do; I-JEPA's ``(1, 1, d)`` mask token is decayed, as officially.
    * ``clip_norm``: V-JEPA clips the gradient norm of the encoder and of the predictor
      *separately* (``torch.nn.utils.clip_grad_norm_`` per module, max norm 10) and only
      once warmup is over. Here the groups are the top-level components of the variable
      paths (``encoder`` / ``predictor`` sub-models), and clipping starts at optimizer
      iteration ``clip_start_step`` (official: ``(warmup_epochs + 1) * iterations_per_epoch``,
      because it tests ``epoch > warmup`` with 0-based epochs).

    * The Adam step is PyTorch's (``torch.optim.AdamW``, the official optimizer):
      ``w <- w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`` with
      ``eps = 1e-8``, i.e. epsilon is added to the bias-corrected root. Keras's Adam adds
      its epsilon (default 1e-7) to the uncorrected root, which differs markedly when
      gradients are small (about 1e-6: late training, bf16): 54% in 20 steps.
      ``epsilon_form="keras"`` keeps Keras's form.

    Example:

    >>> opt = JEPAAdamW(learning_rate=1e-3, weight_decay=CosineSchedule(0.04, 0.4, 100))
    >>> round(float(opt.current_weight_decay()), 4)  # the first update uses step 1
    0.0401
    """

    def __init__(self, learning_rate=1e-3, weight_decay=0.04, clip_norm=None,
                 clip_start_step=0, epsilon=1e-8, epsilon_form="torch", **kwargs):
        if epsilon_form not in ("torch", "keras"):
            raise ValueError(f"epsilon_form must be 'torch' or 'keras'; got {epsilon_form!r}.")
        schedule = None
        if isinstance(weight_decay, dict):
            weight_decay = keras.saving.deserialize_keras_object(weight_decay)
        if isinstance(weight_decay, keras.optimizers.schedules.LearningRateSchedule):
            schedule, weight_decay = weight_decay, 0.0
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         epsilon=epsilon, **kwargs)
        self.epsilon_form = epsilon_form
        self.weight_decay_schedule = schedule
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.clip_start_step = int(clip_start_step)

    def apply(self, grads, trainable_variables=None):
        if self.clip_norm is not None:
            variables = (
                self._trainable_variables if trainable_variables is None else trainable_variables
            )
            grads = self.clip_by_group(list(grads), list(variables))
        return super().apply(grads, trainable_variables)

    def clip_by_group(self, grads, variables):
        """Scales each group's gradients to a global norm of at most ``clip_norm`` (only
        from ``clip_start_step`` on); groups are the first component of variable paths."""
        groups = {}
        for i, variable in enumerate(variables):
            groups.setdefault(variable.path.split("/")[0], []).append(i)
        active = ops.cast(self.iterations >= self.clip_start_step, "float32")
        out = list(grads)
        for members in groups.values():
            squares = [ops.sum(ops.square(ops.cast(grads[i], "float32"))) for i in members]
            norm = ops.sqrt(ops.sum(ops.stack(squares)))
            scale = ops.minimum(1.0, self.clip_norm / (norm + 1e-6))
            scale = active * scale + (1.0 - active)
            for i in members:
                out[i] = ops.multiply(grads[i], ops.cast(scale, ops.dtype(grads[i])))
        return out

    def update_step(self, gradient, variable, learning_rate):
        if self.epsilon_form == "keras":
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        correction1 = 1.0 - ops.power(ops.cast(self.beta_1, dtype), step)
        correction2 = 1.0 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(
            v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2)
        )
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        denom = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / correction1), denom))

    def current_weight_decay(self):
        if self.weight_decay_schedule is None:
            return ops.convert_to_tensor(self.weight_decay, "float32")
        return ops.cast(self.weight_decay_schedule(self.iterations), "float32")

    def _use_weight_decay(self, variable):
        if len(variable.shape) <= 1 or variable.name == "bias":
            return False
        return super()._use_weight_decay(variable)

    def _apply_weight_decay(self, variables):
        wd = self.current_weight_decay()
        lr = ops.cast(self.learning_rate, "float32")
        factor = 1.0 - wd * lr
        for variable in variables:
            if self._use_weight_decay(variable):
                variable.assign(ops.multiply(variable, ops.cast(factor, variable.dtype)))

    def get_config(self):
        config = super().get_config()
        config.update({"clip_norm": self.clip_norm, "clip_start_step": self.clip_start_step,
                       "epsilon_form": self.epsilon_form})
        if self.weight_decay_schedule is not None:
            config["weight_decay"] = keras.saving.serialize_keras_object(
                self.weight_decay_schedule
            )
        return config
