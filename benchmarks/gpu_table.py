"""Runs the GPU throughput table in one call: ``bench_step.py`` for each backend and row,
plus the official I-JEPA step on the same card when a checkout is given.

    python benchmarks/gpu_table.py --output gpu_table.jsonl \\
        [--ijepa /path/to/ijepa --stubs /path/to/stubs] [--rows ijepa_h14,vjepa_l16] \\
        [--backends jax,torch,tensorflow] [--timeout 240]

Each run is a separate process (one backend per process, as Keras requires), killed after
``--timeout`` seconds so that one slow compile cannot take the whole time budget. Every
result is appended to ``--output`` as a JSON line as soon as it exists, with the row name,
backend and return code; the script then prints a Markdown table (samples/s, TFLOP/s,
peak GiB, compile s). The rows are the official configurations, bf16 (``--precision``),
random data:

- ``ijepa_b16``, ``ijepa_l16``, ``ijepa_h14``: I-JEPA at 224 px, batch 128, predictor 12x384;
- ``vjepa_l16``, ``vjepa_h16``: V-JEPA 16x224, batch 24, predictor 12x384.

``--smoke`` swaps in a tiny configuration (ViT-Tiny/16 at 96 px, batch 4, 2 steps) to check
the script itself on a CPU.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

ROWS = {
    "ijepa_b16": ["--model", "ijepa", "--size", "base", "--image-size", "224",
                  "--patch-size", "16", "--batch", "128"],
    "ijepa_l16": ["--model", "ijepa", "--size", "large", "--image-size", "224",
                  "--patch-size", "16", "--batch", "128"],
    "ijepa_h14": ["--model", "ijepa", "--size", "huge", "--image-size", "224",
                  "--patch-size", "14", "--batch", "128"],
    "vjepa_l16": ["--model", "vjepa", "--size", "large", "--image-size", "224",
                  "--patch-size", "16", "--frames", "16", "--batch", "24"],
    "vjepa_h16": ["--model", "vjepa", "--size", "huge", "--image-size", "224",
                  "--patch-size", "16", "--frames", "16", "--batch", "24"],
}
COMMON = ["--predictor-dim", "384", "--predictor-depth", "12", "--steps", "10",
          "--warmup", "3"]
SMOKE = ["--size", "tiny", "--image-size", "96", "--patch-size", "16", "--frames", "4",
         "--batch", "4", "--predictor-dim", "96", "--predictor-depth", "2",
         "--precision", "float32", "--steps", "2", "--warmup", "1"]


def _run(command, env, timeout):
    """Runs ``command``; returns ``(returncode, last JSON line or None, stderr tail)``."""
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, None, f"timed out after {timeout} s"
    rows = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, (json.loads(rows[-1]) if rows else None), done.stderr[-600:]


def _official_args(name, args):
    spec = ROWS[name]
    keep = {k: spec[spec.index(k) + 1] for k in ("--size", "--image-size", "--patch-size",
                                                 "--batch")}
    command = [sys.executable, os.path.join(HERE, "official_step.py"), "--ijepa", args.ijepa]
    if args.stubs:
        command += ["--stubs", args.stubs]
    for key, value in keep.items():
        command += [key, value]
    if args.smoke:  # the same tiny setup as the Keras runs, less the flags it lacks
        pairs = zip(SMOKE[::2], SMOKE[1::2])
        command += [x for key, value in pairs if key not in ("--frames", "--precision")
                    for x in (key, value)]
    else:
        command += COMMON + ["--device", "cuda", "--bf16"]
    return command


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="gpu_table.jsonl")
    parser.add_argument("--rows", default="ijepa_h14,vjepa_l16,ijepa_b16,ijepa_l16,vjepa_h16")
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    parser.add_argument("--ijepa", default=None, help="official I-JEPA checkout (optional)")
    parser.add_argument("--stubs", default=None, help="folder put first on sys.path")
    parser.add_argument("--compile", action="store_true",
                        help="also time the official step under torch.compile")
    parser.add_argument("--precision", default="mixed_bfloat16",
                        choices=["mixed_bfloat16", "bfloat16"],
                        help="Keras dtype policy (mixed: float32 weights, as autocast)")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per run")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU check of the script")
    args = parser.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {sorted(ROWS)}")
    results = []

    def record(entry):
        results.append(entry)
        with open(args.output, "a") as f:
            f.write(json.dumps(entry) + "\n")
        print(json.dumps(entry), flush=True)

    for name in rows:
        for backend in [b for b in args.backends.split(",") if b]:
            spec = ROWS[name][:4] + (SMOKE if args.smoke else ROWS[name][4:] + COMMON + [
                "--precision", args.precision])
            command = [sys.executable, os.path.join(HERE, "bench_step.py")] + spec
            env = dict(os.environ, KERAS_BACKEND=backend)
            code, row, err = _run(command, env, args.timeout)
            record(dict(row=name, backend=backend, returncode=code, result=row,
                        error=None if code == 0 else err))
        if args.ijepa and name.startswith("ijepa"):
            for compiled in ([False, True] if args.compile else [False]):
                command = _official_args(name, args) + (["--compile"] if compiled else [])
                code, row, err = _run(command, dict(os.environ), args.timeout)
                record(dict(row=name, backend="official" + ("+compile" if compiled else ""),
                            returncode=code, result=row,
                            error=None if code == 0 else err))

    print("\n| row | backend | samples/s | TFLOP/s | peak GiB | compile s |")
    print("|---|---|---|---|---|---|")
    for entry in results:
        r = entry["result"] or {}
        cells = [r.get(k) for k in ("samples_per_s", "tflops", "peak_memory_gib",
                                    "compile_s")]
        cells = ["-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
                 for v in cells]
        status = "" if entry["returncode"] == 0 else f" (failed: rc {entry['returncode']})"
        print(f"| {entry['row']} | {entry['backend']}{status} | " + " | ".join(cells) + " |")
    return 0 if all(e["returncode"] == 0 for e in results) else 1


if __name__ == "__main__":
    sys.exit(main())
