"""Runs the test suite once per Keras backend, one pytest process each.

Usage: ``python tests/run_all_backends.py [--backends jax,torch,tensorflow] [pytest args]``

Prints the wall time of every backend's run and a final summary; exits non-zero if any
backend fails (pytest's "no tests collected" counts as a failure).
"""

import argparse
import os
import subprocess
import sys
import time

BACKENDS = ("jax", "torch", "tensorflow")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args, pytest_args = parser.parse_known_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        # Tests run tiny models: XLA's LLVM optimisation costs far more compile time than it
        # saves (JAX compiles every eager op; TF/JAX compile each train step). Results are
        # the same; this roughly halves the JAX suite.
        env.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
        command = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
        print(f"\n===== KERAS_BACKEND={backend}: {' '.join(command + pytest_args)}", flush=True)
        start = time.time()
        code = subprocess.call(command + pytest_args, cwd=root, env=env)
        elapsed = time.time() - start
        print(f"===== KERAS_BACKEND={backend}: exit {code} in {elapsed:.0f} s", flush=True)
        results.append((backend, code, elapsed))
    print("\nsuite time per backend:")
    for backend, code, elapsed in results:
        print(f"  {backend:<11} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {elapsed:7.1f} s")
    total = sum(r[2] for r in results)
    print(f"  {'total':<11} {'':<18} {total:7.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
