"""VEDIT: flow-matching prediction over frozen clip embeddings, and its procedural step
data."""

from keras_jepa.models.vedit.model import (
    VEDIT,
    DiTBlock,
    classification_roles,
    euler_sample,
    forecast_roles,
    planning_roles,
    random_roles,
)
