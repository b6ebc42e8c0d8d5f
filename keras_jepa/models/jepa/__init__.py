"""I-JEPA, V-JEPA, V-JEPA 2 and V-JEPA 2.1: the JEPA base model (context encoder, EMA target encoder,
predictor), the predictors (StoP included), the official recipes and the released presets."""

from keras_jepa.models.jepa.base import JEPA
from keras_jepa.models.jepa.ijepa import IJEPA
from keras_jepa.models.jepa.predictor import JEPAPredictor
from keras_jepa.models.jepa.predictor_2_1 import VJEPA2_1Predictor
from keras_jepa.models.jepa.vjepa import VJEPA
from keras_jepa.models.jepa.vjepa2_1 import VJEPA2_1
from keras_jepa.models.jepa import presets  # noqa: F401  (registers the released checkpoints)
from keras_jepa.models.jepa import presets_2_1  # noqa: F401  (the V-JEPA 2.1 releases)
