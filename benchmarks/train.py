"""XGBoost training throughput on CPU and, where a GPU is visible, on CUDA (the trainer's two code paths).

Generates a dense float32 binary-classification dataset (``--rows`` x ``--features``, a learnable signal),
then trains ``--rounds`` rounds of hist at ``--depth`` exactly as ``include/trainer`` does: ``DMatrix`` on
CPU, ``QuantileDMatrix`` + ``device="cuda"`` on GPU. Prints a table and writes ``build/bench/train.json``
(``{"metric", "value", "unit", "baseline", "ratio"}`` rows). Where a GPU is visible, the GPU rows carry the
CPU run of the same data in the same run as their baseline. The issue's reference (10M x 28 x 200 rounds,
depth 8: 16-core CPU 52 s, H100 2.9 s) is printed, scaled to the run's size, for orientation only.

    python benchmarks/train.py [--rows 1000000] [--features 28] [--rounds 200] [--depth 8] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "providers" / "mlops" / "src"))

from benchmarks._records import emit, record  # noqa: E402

REFERENCE = {"rows": 10_000_000, "rounds": 200, "cpu_s": 52.0, "gpu_s": 2.9}


def make_data(rows: int, features: int, seed: int = 7):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    weights = rng.standard_normal(features).astype(np.float32) / np.sqrt(features)
    logit = x @ weights + 0.5 * np.sin(3 * x[:, 0]) * x[:, 1 % features] - 2.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return x, y


def train_once(x, y, *, device: str, rounds: int, depth: int, threads: int) -> tuple[float, float, float]:
    """Return ``(matrix_seconds, train_seconds, train_logloss)``."""
    import xgboost as xgb

    params = {"objective": "binary:logistic", "tree_method": "hist", "device": device, "max_depth": depth,
              "eta": 0.1, "max_bin": 256, "eval_metric": "logloss"}  # fmt: skip
    if threads:
        params["nthread"] = threads
    started = time.perf_counter()
    matrix = (
        xgb.QuantileDMatrix(x, label=y, max_bin=256)
        if device == "cuda"
        else xgb.DMatrix(x, label=y, nthread=threads or -1)
    )
    matrix_s = time.perf_counter() - started
    evals: dict = {}
    started = time.perf_counter()
    booster = xgb.train(params, matrix, num_boost_round=rounds, evals=[(matrix, "train")], evals_result=evals,
                        verbose_eval=False)  # fmt: skip
    booster.num_boosted_rounds()  # forces the work on asynchronous devices
    train_s = time.perf_counter() - started
    return matrix_s, train_s, float(evals["train"]["logloss"][-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--skip-gpu", action="store_true")
    args = parser.parse_args(argv)

    from include.trainer.fit import gpu_visible

    scale = (args.rows / REFERENCE["rows"]) * (args.rounds / REFERENCE["rounds"])
    print(f"XGBoost hist, {args.rows:,} rows x {args.features} features, {args.rounds} rounds, depth {args.depth}; "
          f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})")  # fmt: skip
    started = time.perf_counter()
    x, y = make_data(args.rows, args.features)
    print(f"generated the data in {time.perf_counter() - started:.1f} s")

    records = []
    matrix_s, cpu_s, cpu_loss = train_once(
        x, y, device="cpu", rounds=args.rounds, depth=args.depth, threads=args.threads
    )
    records += [
        record("cpu_train_seconds", cpu_s, "s"),
        record("cpu_row_rounds_per_second", args.rows * args.rounds / cpu_s, "1/s"),
        record("cpu_dmatrix_seconds", matrix_s, "s"),
        record("cpu_final_train_logloss", cpu_loss, "logloss"),
    ]
    print(f"reference, scaled to this size: 16-core CPU {REFERENCE['cpu_s'] * scale:.2f} s, "
          f"H100 {REFERENCE['gpu_s'] * scale:.2f} s")  # fmt: skip
    if not args.skip_gpu and gpu_visible():
        train_once(x[:10_000], y[:10_000], device="cuda", rounds=5, depth=args.depth, threads=0)  # CUDA context warm-up
        qdm_s, gpu_s, gpu_loss = train_once(x, y, device="cuda", rounds=args.rounds, depth=args.depth, threads=0)
        records += [
            record("gpu_train_seconds", gpu_s, "s", round(cpu_s, 3)),
            record("gpu_quantile_dmatrix_seconds", qdm_s, "s", round(matrix_s, 3)),
            record("gpu_final_train_logloss", gpu_loss, "logloss", round(cpu_loss, 6)),
        ]
    else:
        print("no GPU visible to XGBoost: CPU only (run it on a GPU node for the CUDA numbers)")
    path = emit("train", records)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
