"""``keras-jepa convert``: an official (I-JEPA, V-JEPA, V-JEPA 2, V-JEPA 2.1 and 2-AC with
their preset name as ``--arch``) or Hugging Face
checkpoint, or an official attentive probe, into a keras_jepa preset folder."""


def add_arguments(parser):
    """Adds the ``convert`` options to ``parser``."""
    parser.add_argument("checkpoint",
                        help="official .pth.tar/.pt file, or a Hugging Face folder / "
                             ".safetensors file (config.json beside it)")
    parser.add_argument("output", help="preset folder to write")
    parser.add_argument("--arch", default=None,
                        help="official preset name (keras-jepa presets), pretraining config "
                             "name, or JSON file; optional for Hugging Face folders")
    parser.add_argument("--encoder", choices=["target", "context"], default="target",
                        help="encoder kept by --encoder-only, and the features encoder "
                             "of a full model (default: target, the EMA encoder)")
    parser.add_argument("--encoder-only", action="store_true",
                        help="write a VisionTransformer backbone instead of the full model")
    parser.add_argument("--non-strict", action="store_true",
                        help="skip (and list) checkpoint keys the model has no place for")
    parser.add_argument("--allow-missing", action="store_true",
                        help="keep the model's initial values for weights the checkpoint "
                             "lacks (e.g. a checkpoint without a predictor) instead of failing")
    parser.add_argument("--probe", action="store_true",
                        help="the checkpoint is an attentive probe (V-JEPA *-probe.pth.tar, "
                             "V-JEPA 2 evals/*.pt, or a Hugging Face classifier folder)")
    parser.add_argument("--index", type=int, default=0,
                        help="--probe: which classifier of a V-JEPA 2 list (default 0)")
    parser.add_argument("--num-heads", type=int, default=16,
                        help="--probe: attention heads (16 in every release)")
    return parser


# Python-API advice in converter messages, and the ``convert`` flag that does the same.
_CONVERT_FLAGS = (
    ("allow_missing=True", "--allow-missing"),
    ("strict=False", "--non-strict"),
    ("encoder_only=True", "--encoder-only"),
)


def _with_convert_flags(message):
    """``message`` with each Python argument it recommends followed by its CLI flag."""
    for argument, flag in _CONVERT_FLAGS:
        if argument in message and flag not in message:
            message = message.replace(argument, f"{argument} (CLI: {flag})")
    return message


def run(args):
    """Runs ``keras_jepa.applications.convert_checkpoint`` from parsed arguments."""
    from keras_jepa.checkpoints.converters import convert_checkpoint, load_probe_checkpoint

    try:
        if args.probe:
            from keras_jepa.presets.storage import save_preset

            if args.allow_missing:
                raise ValueError("--allow-missing does not apply to --probe: a probe file "
                                 "must hold every weight of the classifier.")
            probe = load_probe_checkpoint(args.checkpoint, num_heads=args.num_heads,
                                          index=args.index, strict=not args.non_strict)
            save_preset(probe, args.output)
            print(f"saved {probe.variant} probe ({probe.num_classes} classes, depth "
                  f"{probe.depth}) to {args.output}")
            return 0
        from keras_jepa.checkpoints import release_converter
        from keras_jepa.presets.registry import PRESETS

        convert = release_converter(PRESETS.get(args.arch, {})) if isinstance(
            args.arch, str) else convert_checkpoint
        if convert is not convert_checkpoint:  # V-JEPA 2.1 or 2-AC: the whole model
            if args.encoder_only or args.allow_missing:
                raise ValueError(f"--encoder-only and --allow-missing apply to I-JEPA / "
                                 f"V-JEPA / V-JEPA 2 files, not to {args.arch!r}; convert "
                                 "the whole file, then take its encoder with "
                                 "VisionTransformer.from_preset(folder).")
            convert(args.checkpoint, args.output, arch=args.arch,
                    strict=not args.non_strict)
            return 0
        convert_checkpoint(args.checkpoint, args.output, arch=args.arch,
                           encoder=args.encoder, encoder_only=args.encoder_only,
                           strict=not args.non_strict, allow_missing=args.allow_missing)
    except ValueError as error:
        # The converters speak to Python callers; name the flags too. ``main`` reports it.
        message = _with_convert_flags(str(error))
        if message == str(error):
            raise
        raise ValueError(message) from error
    return 0
