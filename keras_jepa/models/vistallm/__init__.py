"""VistaLLM building blocks (Pramanick et al., "Jack of All Tasks, Master of Many",
CVPR 2024): masks, boxes and points as token sequences with gradient-aware adaptive
contour sampling (``sequences``, numpy), the instruction-guided image tokenizer (a Keras
layer), a compact vision-language model trained with ``fit``, and synthetic scenes."""

from keras_jepa.models.vistallm import scenes, sequences
from keras_jepa.models.vistallm.model import VistaLLM, evaluate_tasks, sequence_loss
from keras_jepa.models.vistallm.sequences import (
    Vocabulary,
    adaptive_sample,
    cumulative_iou,
    mask_iou,
    mask_to_contours,
    mask_to_tokens,
    polygons_to_mask,
    prune_points,
    sharpness_scores,
    tokens_to_mask,
    uniform_sample,
)
from keras_jepa.models.vistallm.tokenizer import CrossAttention, InstructionGuidedTokenizer
