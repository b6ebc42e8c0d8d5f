"""Backbones and method models."""

from keras_jepa.models.backbone import Backbone
from keras_jepa.models.vision_transformer import VIT_SIZES, VisionTransformer
