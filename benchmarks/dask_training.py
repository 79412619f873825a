"""The dask training backend (a LocalCluster of 2 worker processes) against the local backend on one training set.

Writes one synthetic snapshot (``--rows`` rows, the test suite's generator: a learnable fraud signal, a time column,
``data.parquet`` + ``manifest.json``), then runs the trainer CLI exactly as the two backends run it:
``python -m include.trainer`` (in memory) and ``python -m include.trainer --engine dask --dask-scheduler ...``
against a ``distributed.LocalCluster`` of ``--workers`` processes with one thread each, as
``XGBoostTrainDaskOperator`` starts it. Both log to one MLflow store and register a version; the times are the
trainer's whole run (read, split, boost, score, log, register) and its boosting alone (``train_seconds``).
Prints a table and writes ``build/bench/dask_training.json``; the dask rows carry the local run as baseline.
On a machine with few cores no speed-up is expected: the point is the same quality (holdout ROC AUC within 0.005).

    python benchmarks/dask_training.py [--rows 2000000] [--workers 2] [--rounds 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "providers" / "mlops" / "src"))

from benchmarks._records import emit, record  # noqa: E402

#: The tolerance the dask backend is held to (tests/integration/training/test_dask.py uses the same).
AUC_TOLERANCE = 0.005


def run_trainer(snapshot: dict, params: Path, workdir: Path, name: str, extra: list[str]) -> tuple[float, dict]:
    """Run the trainer CLI; return ``(wall seconds, result JSON)``."""
    output = workdir / f"{name}.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "MLOPS_MLFLOW_ARTIFACT_ROOT": str(workdir / "artifacts"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "providers" / "mlops" / "src")]),
        "MPLBACKEND": "Agg",
    }
    argv = [sys.executable, "-m", "include.trainer", "--training-set-uri", snapshot["uri"], "--params-file",
            str(params), "--model-name", f"bench_{name}", "--output-json", str(output), "--idempotency-key",
            f"bench/{name}/{time.time_ns()}", *extra]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"the {name} trainer failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return seconds, json.loads(output.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--depth", type=int, default=6)
    args = parser.parse_args()

    from distributed import LocalCluster

    from tests.fixtures.training_snapshot import make_training_snapshot

    with tempfile.TemporaryDirectory(prefix="dask-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        snapshot = make_training_snapshot(workdir / "snapshot", rows=args.rows, seed=11, signal=1.5, days=60)
        print(f"snapshot: {args.rows} rows in {time.perf_counter() - started:.1f} s; load {os.getloadavg()}")
        params = workdir / "params.yaml"
        # No nthread: the local trainer uses every core, each dask worker its one thread.
        params.write_text(
            f"xgboost: {{max_depth: {args.depth}, eta: 0.1}}\nn_estimators: {args.rounds}\nearly_stopping_rounds: 20\n"
        )
        local_s, local = run_trainer(snapshot, params, workdir, "local", [])
        print(f"local: {local_s:.1f} s; load {os.getloadavg()}")
        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster:
            dask_s, dask = run_trainer(
                snapshot, params, workdir, "dask", ["--engine", "dask", "--dask-scheduler", cluster.scheduler_address]
            )
        print(f"dask: {dask_s:.1f} s; load {os.getloadavg()}")

    local_auc, dask_auc = local["metrics"]["roc_auc"], dask["metrics"]["roc_auc"]
    difference = dask_auc - local_auc
    path = emit(
        "dask_training",
        [
            record("local_run_seconds", local_s, "s"),
            record(f"dask_{args.workers}w_run_seconds", dask_s, "s", baseline=local_s),
            record("local_boost_seconds", local["metrics"]["train_seconds"], "s"),
            record(
                f"dask_{args.workers}w_boost_seconds",
                dask["metrics"]["train_seconds"],
                "s",
                baseline=local["metrics"]["train_seconds"],
            ),
            record("local_roc_auc", local_auc, "auc"),
            record(f"dask_{args.workers}w_roc_auc", dask_auc, "auc", baseline=local_auc),
            record("roc_auc_difference", difference, "auc"),
            record("local_best_iteration", local["metrics"]["best_iteration"], "rounds"),
            record(f"dask_{args.workers}w_best_iteration", dask["metrics"]["best_iteration"], "rounds"),
            record("rows", args.rows, "rows"),
        ],
    )
    print(f"time ratio dask/local: {dask_s / local_s:.2f}; ROC AUC difference: {difference:+.5f} "
          f"({'within' if abs(difference) <= AUC_TOLERANCE else 'OUTSIDE'} {AUC_TOLERANCE}); cores: {os.cpu_count()}")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
