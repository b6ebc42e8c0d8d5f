"""LeJEPA: an encoder and projector trained on multi-crop views with an invariance loss and
SIGReg (sliced Epps-Pulley test against an isotropic Gaussian); its configs and a
procedural image set."""

from keras_jepa.models.lejepa.data import SHAPES, make_shapes
from keras_jepa.models.lejepa.model import LeJEPA
from keras_jepa.models.lejepa.recipes import (
    LEJEPA_CONFIGS,
    LeJEPAConfig,
    build_model,
    build_optimizer,
    build_views,
    get_lejepa_config,
)
from keras_jepa.models.lejepa.sigreg import SIGReg, UNIVARIATE_TESTS, epps_pulley
