"""The benchmark scripts: FLOP counting and the input-pipeline timer (no model compile)."""

import json
import os
import subprocess
import sys

import pytest

from tests.test_case import REPO_ROOT

ROOT = REPO_ROOT
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_step  # noqa: E402


def test_block_flops_counts_every_matmul():
    n, d, h = 5, 8, 32
    qkv, proj = 2 * n * d * 3 * d, 2 * n * d * d
    scores, mix = 2 * n * n * d, 2 * n * n * d
    mlp = 2 * n * d * h * 2
    assert bench_step.block_flops(n, d, h) == qkv + proj + scores + mix + mlp


def test_step_flops_of_the_official_tiny_cpu_comparison():
    args = bench_step.argparse.Namespace(
        model="ijepa", size="tiny", image_size=96, patch_size=16, predictor_dim=96,
        predictor_depth=4, rope=False, frames=16)
    config = bench_step.make_config(args)
    from keras_jepa.models.jepa.recipes import build_mask_sampler

    sampler = build_mask_sampler(config)
    kc, kt = sampler.num_context_tokens, sampler.num_target_tokens
    enc = lambda n: 12 * bench_step.block_flops(n, 192, 768) + 2 * n * 3 * 256 * 192  # noqa: E731
    pred = 4 * (2 * kc * 192 * 96 + 4 * bench_step.block_flops(kc + kt, 96, 384)
                + 2 * kt * 96 * 192)
    expected = 16 * (3 * (enc(kc) + pred) + enc(36))
    assert bench_step.step_flops(config, sampler, 16) == expected


def test_pipeline_benchmark_prints_json(tmp_path):
    pytest.importorskip("PIL")
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "bench_pipeline.py"), "--count",
         "8", "--batch", "4", "--batches", "2", "--image-size", "64", "--source-size", "80"],
        capture_output=True, text=True, env=env, check=True, timeout=300)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["kind"] == "images" and row["samples_per_s"] > 0
