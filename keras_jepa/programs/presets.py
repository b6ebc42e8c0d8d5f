"""``keras-jepa presets``: the built-in presets, with their class and whether their weights
can be loaded."""


def add_arguments(parser):
    """Adds the ``presets`` options to ``parser``."""
    parser.add_argument("--filter", default="", help="only names containing this text")
    return parser


def run(args):
    return list_presets(args.filter)


def list_presets(text=""):
    """Prints the built-in presets whose name contains ``text``."""
    from keras_jepa.presets.registry import PRESETS

    rows = [(name, e) for name, e in sorted(PRESETS.items()) if text in name]
    if not rows:
        raise ValueError(f"no preset name contains {text!r}; run `keras-jepa presets` to "
                         "list them all.")
    width = max(len(name) for name, _ in rows)
    print(f"{'name':<{width}}  {'class':<19}  weights  description")
    listed = False
    for name, entry in rows:
        if entry.get("source"):
            weights = "yes" if entry.get("supported", True) else "listed"
        else:
            weights = "yes" if entry.get("handle") else "no"
        listed = listed or weights == "listed"
        print(f"{name:<{width}}  {entry.get('class') or '-':<19}  {weights:<7}  "
              f"{entry['description']}")
    if listed:
        print("\nweights 'listed': a released checkpoint that keras_jepa cannot load yet "
              "(class '-': no keras_jepa class for the whole model); its description says "
              "what can be converted.")
    return 0
