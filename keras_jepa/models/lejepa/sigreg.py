"""SIGReg, Sketched Isotropic Gaussian Regularization (LeJEPA; Balestriero & LeCun, 2025):
a goodness-of-fit test of the embeddings against the isotropic standard normal, made
differentiable and linear in the batch size by testing random 1-D projections ("slices").

For embeddings ``z`` of shape ``(N, K)`` and ``M`` random unit directions ``a_m`` (fresh at
every step), each slice ``z @ a_m`` is scored by a univariate test against ``N(0, 1)`` and
the scores are averaged over the slices.

The univariate test of the paper is Epps-Pulley's (:func:`epps_pulley`): the weighted
squared distance between the empirical characteristic function of the slice,
``phi_N(t) = mean_n exp(i t x_n)``, and the standard normal's, ``exp(-t^2 / 2)``::

    T = N * integral |phi_N(t) - exp(-t^2 / 2)|^2 exp(-t^2 / 2) dt

The integrand is even in ``t``, so the reference code integrates over ``[0, t_max]`` and
doubles: 17 equally spaced knots on ``[0, 3]``, trapezoid weights (``dt / 2`` at both ends,
``dt`` inside) times 2, times the Gaussian window ``exp(-t^2 / 2)``. The real and
imaginary parts give ``|.|^2 = (mean cos(t x) - exp(-t^2 / 2))^2 + (mean sin(t x))^2``.
Other tests can be added to :data:`UNIVARIATE_TESTS` (``(..., N, M) -> (..., M)``).

In LeJEPA the test runs on the projector outputs, **per view**: each view's batch of
projections is tested on its own, with the same slices for every view, and the statistics
are averaged over the views and the slices. The statistic is scaled by the number of
samples, so in multi-device training it must see the global batch: the rows of every
replica are gathered first (``keras_jepa.backend.replicas.gather_across_replicas``;
the identity on one device and under JAX SPMD), which equals the reference code's
all-reduce of the characteristic functions followed by a scaling with the global size.
"""

import keras
import numpy as np
from keras import ops

from keras_jepa.backend.replicas import gather_across_replicas


def epps_pulley_knots(num_knots=17, t_max=3.0):
    """Knots ``t``, the normal characteristic function at them, and the quadrature weights
    (doubled trapezoid rule on ``[0, t_max]`` times the window ``exp(-t^2 / 2)``), float64.

    Example:

    >>> t, phi, w = epps_pulley_knots(5, 2.0)
    >>> t.tolist(), w.round(4).tolist()
    ([0.0, 0.5, 1.0, 1.5, 2.0], [0.5, 0.8825, 0.6065, 0.3247, 0.0677])
    """
    num_knots = int(num_knots)
    if num_knots < 2 or not t_max > 0:
        raise ValueError(
            f"Need num_knots >= 2 and t_max > 0; got num_knots={num_knots}, t_max={t_max}."
        )
    t = np.linspace(0.0, float(t_max), num_knots)
    dt = float(t_max) / (num_knots - 1)
    trapezoid = np.full(num_knots, dt)
    trapezoid[[0, -1]] = dt / 2
    phi = np.exp(-0.5 * t**2)
    return t, phi, 2.0 * trapezoid * phi


def epps_pulley(x, num_knots=17, t_max=3.0):
    """Epps-Pulley statistic of every column of ``x`` against ``N(0, 1)``.

    Args:
        x: ``(..., N, M)``: ``N`` samples of ``M`` univariate variables (slices).
        num_knots, t_max: the quadrature (module docstring).

    Returns:
        ``(..., M)`` float32 statistics, scaled by ``N``: for standard normal samples
        their expectation is about 1 whatever ``N`` (the variance of the empirical
        characteristic function, integrated), otherwise they grow in proportion to ``N``.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 3)).astype("float32")
    >>> stats = keras.ops.convert_to_numpy(epps_pulley(np.stack([x, x ** 2])))
    >>> stats.shape, bool(np.all(stats[0] < 4.0)), bool(np.all(stats[1] > 100.0))
    ((2, 3), True, True)
    """
    t, phi, weights = epps_pulley_knots(num_knots, t_max)
    x = ops.cast(x, "float32")
    n = x.shape[-2]
    if n is None:
        n = ops.shape(x)[-2]
    xt = ops.expand_dims(x, -1) * ops.convert_to_tensor(t.astype("float32"))
    cos_mean = ops.mean(ops.cos(xt), axis=-3)
    sin_mean = ops.mean(ops.sin(xt), axis=-3)
    err = ops.square(cos_mean - ops.convert_to_tensor(phi.astype("float32"))) + ops.square(
        sin_mean)
    return ops.matmul(err, ops.convert_to_tensor(weights.astype("float32"))) * ops.cast(
        n, "float32"
    )


#: Univariate tests SIGReg can use: ``name -> fn(x (..., N, M), num_knots, t_max)``.
UNIVARIATE_TESTS = {"epps_pulley": epps_pulley}


@keras.saving.register_keras_serializable(package="keras_jepa")
class SIGReg(keras.layers.Layer):
    """Sliced univariate Gaussianity test of embeddings, a loss (module docstring).

    Called on ``(N, K)`` embeddings, or ``(V, N, K)`` (``V`` views of the same ``N``
    samples: each view is tested on its own, with the same slices), it returns the mean
    statistic over views and slices, a float32 scalar. The ``num_slices`` directions are
    drawn from a ``keras.random.SeedGenerator`` at every call (pass ``directions`` of shape
    ``(K, M)`` to fix them).

    Args:
        num_slices: random directions per call (256 in the LeJEPA minimal example).
        num_knots, t_max: Epps-Pulley quadrature (17 knots on ``[0, 3]``).
        test: a name in :data:`UNIVARIATE_TESTS`.
        seed: seed of the slice generator (``None``: from Keras's global seed).

    Example:

    >>> import numpy as np
    >>> sigreg = SIGReg(num_slices=64, seed=0)
    >>> z = np.random.default_rng(0).normal(size=(512, 16)).astype("float32")
    >>> bool(float(sigreg(z)) < 3.0), bool(float(sigreg(0.1 * z)) > 30.0)
    (True, True)
    """

    def __init__(self, num_slices=256, num_knots=17, t_max=3.0, test="epps_pulley",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_slices) < 1:
            raise ValueError(f"num_slices must be a positive int; got {num_slices!r}.")
        if test not in UNIVARIATE_TESTS:
            raise ValueError(f"test must be one of {sorted(UNIVARIATE_TESTS)}; got {test!r}.")
        epps_pulley_knots(num_knots, t_max)  # validates the quadrature
        self.num_slices = int(num_slices)
        self.num_knots = int(num_knots)
        self.t_max = float(t_max)
        self.test = test
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="slice_seed")
        self.built = True

    def slice_directions(self, dim):
        """``(dim, num_slices)`` random unit directions (columns), float32."""
        a = keras.random.normal((int(dim), self.num_slices), seed=self.seed_generator)
        return a / ops.sqrt(ops.sum(ops.square(a), axis=0, keepdims=True))

    def call(self, embeddings, directions=None):
        x = ops.cast(embeddings, "float32")
        if len(x.shape) == 2:
            x = x[None]
        if len(x.shape) != 3:
            raise ValueError(
                f"SIGReg takes (N, K) or (V, N, K) embeddings; got shape {tuple(x.shape)}."
            )
        # Every replica's samples (the statistic is scaled by the global batch size).
        x = ops.transpose(gather_across_replicas(ops.transpose(x, (1, 0, 2))), (1, 0, 2))
        if directions is None:
            directions = self.slice_directions(x.shape[-1])
        stats = UNIVARIATE_TESTS[self.test](
            ops.matmul(x, ops.cast(directions, "float32")), self.num_knots, self.t_max
        )
        return ops.mean(stats)

    def compute_output_spec(self, embeddings, directions=None):
        return keras.KerasTensor((), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"num_slices": self.num_slices, "num_knots": self.num_knots,
                       "t_max": self.t_max, "test": self.test, "seed": self.seed})
        return config
