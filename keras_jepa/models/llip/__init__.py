"""Llip (caption-conditioned mixture tokens) with its SigLIP/CLIP baselines, the text
encoder and offline tokenizers, image-text data and zero-shot retrieval."""

from keras_jepa.models.llip.model import CLIP, Llip, SigLIP
from keras_jepa.models.llip.text_encoder import TextEncoder
