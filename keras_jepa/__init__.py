"""keras_jepa: latent-prediction self-supervised learning for Keras 3.

One code base for JAX, PyTorch and TensorFlow; the backend is chosen with
``KERAS_BACKEND`` before the first ``import keras``. When it is unset and the backend Keras
would choose (``~/.keras/keras.json``'s, else TensorFlow) is not installed, keras_jepa picks
the first installed of jax, torch and tensorflow instead of failing.
"""

from keras_jepa.backend.select import choose_default_backend as _choose

_choose()

from keras_jepa import applications, data, evaluation, layers, masks, models  # noqa: E402
from keras_jepa import vistallm  # noqa: E402
from keras_jepa import distribute  # noqa: E402
from keras_jepa.version import __version__  # noqa: E402
