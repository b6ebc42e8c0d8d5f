"""``keras-jepa intphys``: the paper's violation-of-expectation evaluation of a V-JEPA on
IntPhys (dev), GRASP or InfLevel-lab folders.

Defaults per format (official configs): IntPhys 16-frame windows, frame step 2, at most
``99 // 2`` frames, context lengths 2-10; GRASP 16 frames, step 10, contexts 2-10; InfLevel
32 frames, step 5, contexts 4-20. The stride is 2. The table gives, per property, the
pairwise accuracy with avg surprise at the best context row (the paper's headline), with a
bootstrap 95% interval, then every metric of that row (relative accuracy avg/max, absolute
and best absolute accuracy, AUROC and AUPRC avg/max); ``results.json`` keeps every row and
metric, and a PNG shows the surprise over time of the first pair.
"""

import json
import os
import time

import numpy as np

FORMAT_DEFAULTS = {
    "intphys": dict(frames_per_clip=16, frame_step=2, max_frames=99 // 2,
                    context_lengths=(2, 4, 6, 8, 10)),
    "grasp": dict(frames_per_clip=16, frame_step=10, max_frames=None,
                  context_lengths=(2, 4, 6, 8, 10)),
    "inflevel": dict(frames_per_clip=32, frame_step=5, max_frames=None,
                     context_lengths=(4, 8, 12, 16, 20)),
}


def load_vjepa(preset):
    """A V-JEPA (encoder, target encoder, predictor) from a ``.keras`` file, or from a
    preset name or directory through ``keras_jepa.applications.VJEPA.from_preset``."""
    import keras

    if str(preset).endswith(".keras"):
        if not os.path.exists(preset):
            raise ValueError(f"Model file not found: {preset!r}.")
        return keras.saving.load_model(preset)
    from keras_jepa import applications

    vjepa = getattr(applications, "VJEPA", None)
    if vjepa is None or not hasattr(vjepa, "from_preset"):
        raise ValueError(
            f"Cannot load {preset!r}: pass a .keras file saved from a keras_jepa VJEPA."
        )
    return vjepa.from_preset(preset)


def add_arguments(parser):
    """The ``intphys`` options."""
    parser.add_argument("--preset", required=True,
                        help="VJEPA preset name or directory, or a .keras file")
    parser.add_argument("--data", required=True, help="benchmark folder")
    parser.add_argument("--format", required=True, choices=sorted(FORMAT_DEFAULTS),
                        help="folder layout: intphys, grasp or inflevel")
    parser.add_argument("--csv", nargs="*", default=None,
                        help="InfLevel pair CSVs (default: DATA/*.csv)")
    parser.add_argument("--priming", action="store_true",
                        help="InfLevel: keep the priming part of the videos")
    parser.add_argument("--frame-step", type=int, default=None,
                        help="keep every N-th frame of the videos (default: the format's: "
                             "intphys 2, grasp 10, inflevel 5)")
    parser.add_argument("--frames-per-clip", type=int, default=None,
                        help="default: the format's (must match the encoder)")
    parser.add_argument("--context-lengths", type=int, nargs="+", default=None,
                        help="context frames of each surprise row, e.g. 2 4 6 (default: the "
                             "format's; lengths >= --frames-per-clip are dropped)")
    parser.add_argument("--stride", type=int, default=2,
                        help="frames between the starts of successive windows (default 2)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="windows per forward pass (default 8)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N pairs")
    parser.add_argument("--output", default="voe_results", help="output folder")
    return parser


def evaluate_folder(model, data, format, csv_files=None, priming=False, frame_step=None,
                    frames_per_clip=None, context_lengths=None, stride=2, batch_size=8,
                    limit=None, output_dir=None, verbose=1):
    """Surprise of ``model`` on every matched pair of a benchmark folder, then the metric
    tables. Returns ``{"table", "rows", "surprise": (possible, impossible), "property"}``."""
    from keras_jepa.evaluation.intuitive_physics import iter_grasp, iter_inflevel, iter_intphys
    from keras_jepa.evaluation.surprise import (
        SurpriseModel,
        format_metrics,
        format_table,
        plot_surprise_pair,
        property_table,
        video_surprise,
        voe_metrics,
    )

    if format not in FORMAT_DEFAULTS:
        raise ValueError(f"format must be one of {sorted(FORMAT_DEFAULTS)}; got {format!r}.")
    d = FORMAT_DEFAULTS[format]
    frame_step = int(frame_step or d["frame_step"])
    fpc = int(frames_per_clip or model.encoder.num_frames or d["frames_per_clip"])
    contexts = tuple(context_lengths or d["context_lengths"])
    contexts = tuple(c for c in contexts if c < fpc)
    size = model.encoder.image_size[0]
    kw = dict(frame_step=frame_step, max_frames=d["max_frames"] if format == "intphys"
              else None, image_size=size)
    if format == "intphys":
        pairs = iter_intphys(data, **kw)
    elif format == "grasp":
        pairs = iter_grasp(data, **kw)
    else:
        import glob

        csv_files = csv_files or sorted(glob.glob(os.path.join(data, "*.csv")))
        pairs = iter_inflevel(data, csv_files, priming=priming, **kw)
    head = SurpriseModel(model, contexts)
    possible, impossible, props, names = [], [], [], []
    start = time.time()
    for k, pair in enumerate(pairs):
        if limit is not None and k >= int(limit):
            break
        s = video_surprise(head, [pair["possible"], pair["impossible"]],
                           frames_per_clip=fpc, frame_step=1, stride=stride,
                           context_lengths=contexts, batch_size=batch_size)
        possible.append(s[0])
        impossible.append(s[1])
        props.append(pair["property"])
        names.append(pair["name"])
        if verbose:
            print(f"\r  {k + 1} pairs ({time.time() - start:.0f} s)", end="", flush=True)
    if verbose:
        print()
    if not possible:
        raise ValueError(f"No pairs found in {data!r}.")
    table = property_table(possible, impossible, props, contexts)
    rows = {p: voe_metrics([possible[i] for i in range(len(props)) if props[i] == p],
                           [impossible[i] for i in range(len(props)) if props[i] == p],
                           contexts) for p in dict.fromkeys(props)}
    text = format_table({"V-JEPA": table},
                        title="pairwise accuracy (%), avg surprise, best context row "
                              "[bootstrap 95% CI]:")
    text += "\n\n" + format_metrics(table, title="all metrics (%) of that row:")
    if verbose:
        print(text)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        plot_surprise_pair(possible[0][0], impossible[0][0],
                           os.path.join(output_dir, "surprise_pair.png"),
                           title=f"{names[0]} (context {contexts[0]} frames)")
        with open(os.path.join(output_dir, "results.json"), "w") as f:
            json.dump({"table": table, "rows": {p: {str(r): v for r, v in rs.items()}
                                                for p, rs in rows.items()},
                       "names": names, "frame_step": frame_step,
                       "frames_per_clip": fpc, "context_lengths": contexts,
                       "surprise_possible": [np.asarray(s).tolist() for s in possible],
                       "surprise_impossible": [np.asarray(s).tolist() for s in impossible]},
                      f, default=str)
    return {"table": table, "rows": rows, "surprise": (possible, impossible),
            "property": props, "names": names, "text": text}


def run_from_args(args):
    """Runs ``keras-jepa intphys`` from parsed arguments."""
    model = load_vjepa(args.preset)
    evaluate_folder(model, args.data, args.format, csv_files=args.csv,
                    priming=args.priming, frame_step=args.frame_step,
                    frames_per_clip=args.frames_per_clip,
                    context_lengths=args.context_lengths, stride=args.stride,
                    batch_size=args.batch_size, limit=args.limit, output_dir=args.output)
    return 0


def run(args):
    """Runs the program from parsed arguments (``keras-jepa intphys``)."""
    return run_from_args(args)
