"""Backbones and method models, one folder per family (see CONTRIBUTING.md); this module
gathers their public names."""

from keras_jepa.presets.mixin import Backbone
from keras_jepa.models.xrm.group_robust import ERM, GroupDRO
from keras_jepa.models.jepa.ijepa import IJEPA
from keras_jepa.models.iwm.model import (
    IWM,
    IWM_RECIPES,
    ConditionedPredictor,
    GroupLearningRateAdamW,
    IWMClassifier,
    finetune_optimizer,
    iwm_recipe,
)
from keras_jepa.models.jepa.base import JEPA
from keras_jepa.models.llip.model import CLIP, Llip, SigLIP
from keras_jepa.models.jepa.predictor import JEPAPredictor
from keras_jepa.models.llip.text_encoder import TextEncoder
from keras_jepa.models.vedit.model import (
    VEDIT,
    DiTBlock,
    classification_roles,
    euler_sample,
    forecast_roles,
    planning_roles,
    random_roles,
)
from keras_jepa.models.vit.vision_transformer import VIT_SIZES, VisionTransformer
from keras_jepa.models.jepa.vjepa import VJEPA
from keras_jepa.models.xrm.model import XRM
from keras_jepa.models.vistallm.model import VistaLLM
from keras_jepa.models.ac.model import ACPredictor, VJEPA2AC
from keras_jepa.models.lejepa import LeJEPA, SIGReg
