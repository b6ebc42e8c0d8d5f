"""The JEPA Vision Transformer (image and video encoder), the backbone every family uses."""

from keras_jepa.models.vit.vision_transformer import VIT_SIZES, VisionTransformer
from keras_jepa.models.vit import presets  # noqa: F401  (registers the ViT presets)
