"""Ready-to-use models and the released checkpoints.

``IJEPA.from_preset(...)`` / ``VJEPA.from_preset(...)`` give the full released models
(context encoder, EMA target encoder, predictor); the V-JEPA 2.1 releases
(``vjepa2_1_*``) load as a ``VJEPA2_1`` (a ``VJEPA``) through ``VJEPA.from_preset`` or
``VJEPA2_1.from_preset`` (dense features; ``VisionTransformer.from_preset`` gives their
encoder);
``VJEPA2AC.from_preset(...)`` the action-conditioned world model (frozen encoder + AC predictor); ``VisionTransformer.from_preset(...)``
gives one encoder as a backbone. ``keras-jepa presets`` lists the names;
``convert_checkpoint`` (``keras-jepa convert``) turns official or Hugging Face files, and
checkpoints you trained with the official code, into presets.
"""

from keras_jepa.checkpoints.converters import (
    build_model_from_arch,
    cache_root,
    checkpoint_path,
    convert_checkpoint,
    export_official_state,
    load_checkpoint_weights,
    load_probe_checkpoint,
)
from keras_jepa.models.ac.model import VJEPA2AC
from keras_jepa.models.ac.presets import AC_PRESETS
from keras_jepa.models.jepa.ijepa import IJEPA
from keras_jepa.models.jepa.presets import OFFICIAL_PRESETS, OFFICIAL_PROBES
from keras_jepa.models.jepa.presets_2_1 import VJEPA2_1_PRESETS
from keras_jepa.models.jepa.vjepa import VJEPA
from keras_jepa.models.jepa.vjepa2_1 import VJEPA2_1
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from keras_jepa.presets.registry import PRESETS
