"""Train VEDIT (latent flow matching over frozen clip embeddings) and its deterministic
regressor baseline; report step forecasting, long-horizon edit distance, procedure planning
and task classification, with a Markov oracle as the ceiling on synthetic data.

Examples (``python applications/train_vedit.py`` takes the same options)::

    # the offline synthetic procedural benchmark (digit clips, branching step grammars)
    keras-jepa train-vedit
    keras-jepa train-vedit --quick                  # smoke run, meaningless numbers
    keras-jepa train-vedit --set train_repeats=48 --set sampling_steps=20

    # real videos: cache clip embeddings of annotated segments with a frozen encoder preset,
    # then train VEDIT on the step sequences and report step forecasting top-1
    keras-jepa train-vedit --annotations steps.csv --videos /data/coin \\
        --encoder vjepa_vitl16_224 --cache cache/coin

The annotation format (CSV/JSON rows ``video,start,end,step,task``) and how COIN, CrossTask,
NIV and Ego4D LTA map onto it are described in ``keras_jepa/models/vedit/data.py``.
"""

import json
import time

import numpy as np


def _parse_set(values):
    out = {}
    for item in values or []:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_real(args, overrides):
    """Cache embeddings of annotated segments, train VEDIT and the regressor on step
    sequences, report next-step forecasting top-1 on a held-out split of videos."""
    from keras_jepa.models.vedit.data import (
        StepSequences,
        extract_clip_embeddings,
        read_step_annotations,
    )
    from keras_jepa.programs.vedit_benchmark import (
        BENCHMARK_SETTINGS,
        _fit_predictor,
        step_probabilities,
        train_step_classifier,
    )
    from keras_jepa.models.vedit.metrics import top1_accuracy
    from keras_jepa.models import VisionTransformer
    from keras_jepa.models.vedit.model import forecast_roles

    settings = dict(BENCHMARK_SETTINGS["full"], **overrides)
    encoder = VisionTransformer.from_preset(args.encoder)
    extract_clip_embeddings(encoder, read_step_annotations(args.annotations), args.videos,
                            args.cache, num_frames=args.num_frames,
                            image_size=args.image_size)
    seqs = StepSequences.from_cache(args.cache, max_length=args.max_length)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(seqs))
    n_test = max(1, int(0.2 * len(seqs)))
    test, train = seqs.subset(order[:n_test]), seqs.subset(order[n_test:])
    valid = train.steps >= 0
    num_classes = int(seqs.steps.max()) + 1
    recognizer, _ = train_step_classifier(train.embeddings[valid], train.steps[valid],
                                          num_classes, epochs=settings["probe_epochs"])
    observed = np.array([rng.integers(1, n) for n in test.lengths])
    roles = np.stack([forecast_roles(test.steps.shape[1], int(k), 1) for k in observed])
    truth = test.steps[np.arange(len(test)), observed]
    for name, objective in (("vedit", "flow"), ("regressor", "regression")):
        model, info = _fit_predictor(objective, train, settings, args.seed, 1)
        gen = model.sample(test.embeddings, roles,
                           num_samples=settings["num_samples"] if objective == "flow" else 1)
        probs = step_probabilities(recognizer, gen[np.arange(len(test)), :, observed])
        print(f"{name}: step forecasting top-1 {top1_accuracy(probs.mean(1).argmax(-1), truth):.3f}"
              f" (train {info['seconds']:.0f} s)")


def add_arguments(parser):
    """Adds the ``train-vedit`` options to ``parser``."""
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test settings")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the data, the models and the sampling (default 0)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a benchmark setting (see BENCHMARK_SETTINGS)")
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--annotations", help="CSV/JSON step annotations (real videos)")
    parser.add_argument("--videos", help="folder of the annotated videos")
    parser.add_argument("--encoder", default="vjepa_vitl16_224", help="frozen encoder preset")
    parser.add_argument("--cache", default="vedit_cache", help="embedding cache folder")
    parser.add_argument("--num-frames", type=int, default=16,
                        help="frames per annotated segment clip (default 16)")
    parser.add_argument("--image-size", type=int, default=224,
                        help="frame side fed to the encoder (default 224)")
    parser.add_argument("--max-length", type=int, default=16,
                        help="steps per video kept in a sequence (default 16)")
    return parser


def run(args):
    """Runs the synthetic benchmark, or the real-video pipeline with ``--annotations``."""
    overrides = _parse_set(args.set)
    import keras

    print("backend:", keras.backend.backend())
    if args.annotations:
        run_real(args, overrides)
        return 0
    from keras_jepa.programs.vedit_benchmark import format_benchmark, run_procedural_benchmark

    start = time.time()
    results = run_procedural_benchmark("quick" if args.quick else "full", seed=args.seed,
                                       **overrides)
    print(format_benchmark(results))
    print(f"wall time: {time.time() - start:.1f} s")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return 0
