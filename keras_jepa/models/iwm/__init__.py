"""Image World Models: a JEPA predictor conditioned on photometric transformations, its
paired-view data and its world-model metrics (MRR)."""

from keras_jepa.models.iwm.model import (
    IWM,
    IWM_RECIPES,
    ConditionedPredictor,
    IWMClassifier,
    finetune_optimizer,
    iwm_recipe,
)
