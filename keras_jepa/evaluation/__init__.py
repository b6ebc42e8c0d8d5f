"""Evaluation: environment discovery and group-robust metrics (more protocols to come)."""

from keras_jepa.evaluation.environment_discovery import (
    run_xrm,
    search_group_robust,
    search_xrm,
    train_group_robust,
)
from keras_jepa.evaluation.attentive_probe import (
    AttentiveClassifier,
    CrossAttention,
    CrossAttentionBlock,
    attentive_probe_entries,
    export_official_probe,
    load_official_probe,
)
from keras_jepa.evaluation.features import (
    FeatureExtractor,
    extract_features,
    images_as_video,
    segment_tokens,
)
from keras_jepa.evaluation.procedural import (
    edit_distance,
    min_edit_distance,
    planning_metrics,
    run_procedural_benchmark,
    top1_accuracy,
    train_sequence_classifier,
    train_step_classifier,
)
from keras_jepa.evaluation.world_model import (
    chance_mrr,
    mean_reciprocal_rank,
    reciprocal_ranks,
    world_model_banks,
    world_model_mrr,
)
from keras_jepa.evaluation.groups import (
    GroupSelection,
    adjusted_rand_index,
    cross_mistakes,
    flip_rate,
    group_agreement,
    group_ids,
    group_metrics,
    infer_environments,
    is_degenerate,
    reweighting_weights,
    sample_hparams,
    select_by_flip_rate,
    select_by_worst_group,
    subsample_groups,
    worst_group_accuracy,
)
from keras_jepa.evaluation.zero_shot import (
    encode_images,
    encode_texts,
    image_text_scores,
    retrieval_metrics,
    zero_shot_accuracy,
    zero_shot_classify,
)
from keras_jepa.evaluation.probes import (
    PROBE_RECIPES,
    LinearClassifier,
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
    auroc,
    bootstrap_ci,
    format_table,
    pairwise_accuracy,
    plot_surprise_pair,
    property_table,
    time_masks,
    video_surprise,
    voe_metrics,
)
