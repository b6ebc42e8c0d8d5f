"""Evaluation: environment discovery and group-robust metrics (more protocols to come)."""

from keras_jepa.evaluation.environment_discovery import (
    run_xrm,
    search_group_robust,
    search_xrm,
    train_group_robust,
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
