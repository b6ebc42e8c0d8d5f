"""keras_jepa: latent-prediction self-supervised learning for Keras 3.

One code base for JAX, PyTorch and TensorFlow (``KERAS_BACKEND``).
"""

from keras_jepa import applications, data, layers, models
from keras_jepa.version import __version__
