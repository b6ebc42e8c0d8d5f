"""keras_jepa: latent-prediction self-supervised learning for Keras 3.

One code base for JAX, PyTorch and TensorFlow; the backend is chosen with
``KERAS_BACKEND`` before the first ``import keras``. When it is unset and the backend Keras
would choose (``~/.keras/keras.json``'s, else TensorFlow) is not installed, keras_jepa picks
the first installed of jax, torch and tensorflow instead of failing.
"""

from keras_jepa.backend.select import choose_default_backend as _choose

_choose()

from keras_jepa import backend, data, layers, masks, training  # noqa: E402
from keras_jepa import presets, models, evaluation, checkpoints  # noqa: E402
from keras_jepa import applications, distribute  # noqa: E402
from keras_jepa.version import __version__  # noqa: E402
