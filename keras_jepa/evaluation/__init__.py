"""Evaluation protocols that take any encoder: features (multi-segment, multi-view video
protocol), linear, k-NN and attentive probes (one head, or a grid of heads trained at once),
per-token (dense) linear probes, and intuitive-physics surprise with the
IntPhys, GRASP and InfLevel readers."""

from keras_jepa.evaluation.attentive_probe import (
    AttentiveClassifier,
    CrossAttention,
    CrossAttentionBlock,
)
from keras_jepa.evaluation.dense import (
    DenseLinearProbe,
    extract_dense_features,
    mean_interval,
    per_image_scores,
    token_labels,
)
from keras_jepa.evaluation.features import (
    FeatureExtractor,
    extract_features,
    images_as_video,
    segment_tokens,
)
from keras_jepa.evaluation.probes import (
    PROBE_GRIDS,
    PROBE_RECIPES,
    LinearClassifier,
    ProbeGrid,
    evaluate_probe_grid,
    probe_grid,
    probe_grid_optimizer,
    train_probe_grid,
    aggregate_views,
    evaluate_probe,
    flatten_views,
    knn_classify,
    predict_probabilities,
    probe_optimizer,
    topk_accuracy,
    train_probe,
)
from keras_jepa.evaluation.surprise import (
    SurpriseModel,
    absolute_accuracy,
    aggregate_surprise,
    auprc,
    auroc,
    best_absolute_accuracy,
    bootstrap_ci,
    format_metrics,
    format_table,
    pairwise_accuracy,
    plot_surprise_pair,
    precision_recall,
    property_table,
    time_masks,
    video_surprise,
    voe_metrics,
)
from keras_jepa.evaluation.pixel_predictor import (
    PixelPredictor,
    PixelSurpriseModel,
    patchify_video,
)
from keras_jepa.evaluation.intuitive_physics import (
    iter_grasp,
    iter_inflevel,
    iter_intphys,
    load_voe_pairs,
    read_video_frames,
)
