"""XGBoost training throughput on CPU and, where a GPU is visible, on CUDA (the trainer's two code paths).

Generates a dense float32 binary-classification dataset (``--rows`` x ``--features``, a learnable signal),
then trains ``--rounds`` rounds of hist at ``--depth`` exactly as ``include/trainer`` does: ``DMatrix`` on
CPU, ``QuantileDMatrix`` + ``device="cuda"`` on GPU. Prints a table and writes ``build/bench/train.json``
(``{"metric", "value", "unit", "baseline", "ratio"}`` rows). Where a GPU is visible, the GPU rows carry the
CPU run of the same data in the same run as their baseline. The issue's reference (10M x 28 x 200 rounds,
depth 8: 16-core CPU 52 s, H100 2.9 s) is printed, scaled to the run's size, for orientation only.

    python benchmarks/train.py [--rows 1000000] [--features 28] [--rounds 200] [--depth 8] [--threads 0]

Same-run baseline for the trainer (``--trainer``): the same data is written as a training-set snapshot under /tmp
(removed after), and the trainer's own path (``load_training_data`` -> ``booster_params`` -> ``matrices`` ->
``train_booster``, early stopping off, so both run every round) is timed against bare ``xgboost.train`` with the
same booster parameters and the same evaluation sets on the same train rows, from NumPy arrays already in memory.
Target: the trainer within 1.1x of bare XGBoost.
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


def trainer_against_bare(
    x, y, *, rounds: int, depth: int, threads: int, threshold_mb: float, repeats: int
) -> list[dict]:
    """Time the trainer's in-memory engine and bare ``xgboost.train`` on the same rows, interleaved; return records.

    Trainer side: ``InMemoryEngine`` as ``python -m include.trainer`` drives it (read the snapshot's manifest,
    ``prepare``: read the rows and split them by time, ``training_plan``, ``fit``: matrices, boosting with early
    stopping, threshold and validation/holdout scores). Bare side: ``xgb.DMatrix`` from the NumPy arrays already in
    memory and ``xgb.train``. Both use the same booster parameters (the trainer's resolved ones, ``nthread``
    included), the same validation rows as their one evaluation set, the same rounds and the same early-stopping
    callback (patience ``rounds``, so neither stops early); their validation curves must be equal.
    """
    import json
    import shutil
    import statistics
    import tempfile

    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from include.trainer.engine import InMemoryEngine
    from include.trainer.params import DEFAULT_PARAMS

    names = [f"f{i:02d}" for i in range(x.shape[1])]
    work = Path(tempfile.mkdtemp(prefix="train-bench-", dir="/tmp"))
    frame = pd.DataFrame(x, columns=names)
    frame.insert(0, "ts", pd.date_range("2026-01-01", periods=len(frame), freq="s", tz="UTC"))
    frame["label"] = y.astype("int64")
    frame.to_parquet(work / "data.parquet", index=False, row_group_size=262_144)
    del frame
    manifest = {"label_column": "label", "timestamp_column": "ts", "feature_columns": names,
                "categorical_columns": []}  # fmt: skip
    (work / "manifest.json").write_text(json.dumps(manifest))
    params = {**DEFAULT_PARAMS, "n_estimators": rounds, "early_stopping_rounds": rounds,
              "external_memory_threshold_mb": threshold_mb,
              "xgboost": {**DEFAULT_PARAMS["xgboost"], "max_depth": depth, "device": "cpu", "nthread": threads}}  # fmt: skip
    engine = InMemoryEngine(os.environ)

    def trainer_once() -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        rows, read_manifest = engine.read_training_set(str(work))
        data = engine.prepare(rows, read_manifest, params, "binary")
        prepared = time.perf_counter()
        fitted = engine.fit(params, engine.training_plan(params, gpu=False), data)
        return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "prepare": prepared - wall,
                "boosting": fitted.train_seconds, "data": data, "fitted": fitted}  # fmt: skip

    def bare_once(resolved: dict, n_train: int, n_val: int) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        dtrain = xgb.DMatrix(x[:n_train], label=y[:n_train], nthread=threads)
        dval = xgb.DMatrix(x[n_train : n_train + n_val], label=y[n_train : n_train + n_val], nthread=threads)
        boosting = time.perf_counter()
        evals: dict = {}
        xgb.train(resolved, dtrain, num_boost_round=rounds, evals=[(dval, "validation")], evals_result=evals,
                  early_stopping_rounds=rounds, verbose_eval=False)  # fmt: skip
        done = time.perf_counter()
        return {"wall": done - wall, "cpu": time.process_time() - cpu, "boosting": done - boosting, "evals": evals}

    trainer_runs, bare_runs = [], []
    try:
        for repeat in range(repeats):  # interleaved, so load that comes and goes falls on both sides alike
            trainer = trainer_once()
            data, fitted = trainer.pop("data"), trainer.pop("fitted")
            n_train, n_val = len(data.y_train), len(data.y_val)
            bare = bare_once(dict(fitted.booster_params), n_train, n_val)
            same_curve = all(
                np.allclose(fitted.evals_result["validation"][m], values)
                for m, values in bare.pop("evals")["validation"].items()
            )
            del data, fitted
            load = os.getloadavg()[0]
            print(f"repeat {repeat + 1}/{repeats}: trainer {trainer['wall']:.1f} s (cpu {trainer['cpu']:.1f} s; "
                  f"prepare {trainer['prepare']:.1f} s, boosting {trainer['boosting']:.1f} s), bare {bare['wall']:.1f} s "
                  f"(cpu {bare['cpu']:.1f} s; boosting {bare['boosting']:.1f} s); same validation curve: {same_curve}; "
                  f"load {load:.1f}", flush=True)  # fmt: skip
            if not same_curve:
                raise SystemExit("the trainer and bare xgboost.train boosted different models: not a fair comparison")
            trainer_runs.append(trainer)
            bare_runs.append(bare)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    wall_ratio = median(trainer_runs, "wall") / median(bare_runs, "wall")
    cpu_ratio = median(trainer_runs, "cpu") / median(bare_runs, "cpu")
    print(f"trainer vs bare xgboost.train ({n_train:,} train rows, {n_val:,} validation rows, {rounds} rounds, "
          f"nthread {threads}), medians of {repeats}: wall {median(trainer_runs, 'wall'):.1f} s vs "
          f"{median(bare_runs, 'wall'):.1f} s = {wall_ratio:.3f}x, cpu {median(trainer_runs, 'cpu'):.1f} s vs "
          f"{median(bare_runs, 'cpu'):.1f} s = {cpu_ratio:.3f}x; target 1.1x: {'met' if wall_ratio <= 1.1 else 'missed'}")  # fmt: skip
    return [
        record(
            "trainer_seconds",
            median(trainer_runs, "wall"),
            "s (snapshot to scored booster)",
            round(median(bare_runs, "wall"), 3),
        ),  # fmt: skip
        record("trainer_cpu_seconds", median(trainer_runs, "cpu"), "s", round(median(bare_runs, "cpu"), 3)),
        record(
            "trainer_boosting_seconds", median(trainer_runs, "boosting"), "s", round(median(bare_runs, "boosting"), 3)
        ),
        record("trainer_prepare_seconds", median(trainer_runs, "prepare"), "s (snapshot read and time split)"),
        record("bare_xgboost_seconds", median(bare_runs, "wall"), "s (DMatrix + xgboost.train from NumPy)"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--skip-gpu", action="store_true")
    parser.add_argument("--trainer", action="store_true", help="also time the trainer against bare xgboost.train")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved trainer/bare pairs (--trainer)")
    parser.add_argument("--external-memory-threshold-mb", type=float, default=2048,
                        help="the trainer's threshold (0: always in memory)")  # fmt: skip
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
    if args.trainer:
        records += trainer_against_bare(
            x, y, rounds=args.rounds, depth=args.depth, threads=args.threads or os.cpu_count() or 1,
            threshold_mb=args.external_memory_threshold_mb, repeats=args.repeats,
        )  # fmt: skip
        load = os.getloadavg()
        print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    path = emit("train", records)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
