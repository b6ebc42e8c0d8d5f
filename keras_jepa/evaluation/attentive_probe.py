"""The V-JEPA / V-JEPA 2 attentive probe (``AttentiveClassifier``), a frozen-backbone
evaluation head. It is built from layers (``keras_jepa.layers.attentive_pooler``, so that
models such as IWM's classifier can use it); its official weights load through
``keras_jepa.checkpoints.probes``.
"""

from keras_jepa.layers.attentive_pooler import (  # noqa: F401
    DEFAULT_DEPTH,
    LINEAR_INITS,
    PROBE_VARIANTS,
    VJEPA1_UNUSED_KEYS,
    AttentiveClassifier,
    CrossAttention,
    CrossAttentionBlock,
)
