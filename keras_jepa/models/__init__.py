"""Backbones and method models."""

from keras_jepa.models.backbone import Backbone
from keras_jepa.models.group_robust import ERM, GroupDRO
from keras_jepa.models.ijepa import IJEPA
from keras_jepa.models.iwm import (
    IWM,
    IWM_RECIPES,
    ConditionedPredictor,
    GroupLearningRateAdamW,
    IWMClassifier,
    finetune_optimizer,
    iwm_recipe,
)
from keras_jepa.models.jepa import JEPA
from keras_jepa.models.llip import CLIP, Llip, SigLIP
from keras_jepa.models.predictor import JEPAPredictor
from keras_jepa.models.text_encoder import TextEncoder
from keras_jepa.models.vedit import (
    VEDIT,
    DiTBlock,
    classification_roles,
    euler_sample,
    forecast_roles,
    planning_roles,
    random_roles,
)
from keras_jepa.models.vision_transformer import VIT_SIZES, VisionTransformer
from keras_jepa.models.vjepa import VJEPA
from keras_jepa.models.xrm import XRM
