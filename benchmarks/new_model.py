"""Benchmark of "bring your own data": wall time from a data file to a served model. Target: 3 minutes.

Writes a synthetic events file (CSV, ``--rows`` rows over ``--days`` UTC days, a text entity key, a label
expression, numeric and text features), then times what a user runs, each as its own process:

1. ``python -m include.scaffold`` (``make new-model``): contract, spec and params inferred, rows landed;
2. the generated ``<model>__training`` DAG through Airflow's ``dag.test()``: ingest, validate, Feast apply and
   materialize, training set, train, gate, local deployment and the smoke test.

Setup that a user does once (``airflow db migrate``, the promotion pool) is timed separately and not counted.
Everything runs in a private Airflow home, data root and spec folder under ``build/bench/new_model/``, with
the local endpoint on a free port; the endpoint is stopped at the end. Writes ``build/bench/new_model.json``.

Usage: ``python benchmarks/new_model.py [--rows 20000] [--days 10]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _records import emit, record  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from include.airflow_runner import prepare_metadata_db  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "bench" / "new_model"
MODEL = "bench_new_model"
TARGET_SECONDS = 180.0

_TRAIN = """
import json
from pathlib import Path
from include.airflow_runner import load_dag, task_durations, task_states
try:
    dag = load_dag({dag_id!r}, [Path({dags!r})])
    run = dag.test(run_conf={conf!r})
    print(json.dumps({{"states": task_states(run), "seconds": task_durations(run)}}))
finally:
    from mlops_provider.hooks.local_serving import LocalServingHook
    LocalServingHook().stop_all()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment() -> dict[str, str]:
    src = ROOT / "providers" / "mlops" / "src"
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), str(src), os.environ.get("PYTHONPATH", "")) if p),
        AIRFLOW_HOME=str(WORK / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__MLOPS__PROJECT_ROOT=str(ROOT),
        AIRFLOW__MLOPS__LOCAL_ROOT=str(WORK / "mlops"),
        AIRFLOW__MLOPS__MODEL_SPECS_FOLDER=str(WORK / "project" / "include" / "models"),
        AIRFLOW__MLOPS__LOCAL_SERVING_PORT=str(_free_port()),
    )


def events(rows: int, days: int, seed: int = 5) -> pd.DataFrame:
    """Synthetic events whose label (``spend * 2 > 150``) depends on a feature-like signal."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-05-01", tz="UTC")
    score = rng.normal(0.0, 1.0, rows)
    return pd.DataFrame(
        {
            "account": rng.choice([f"acc{i:04d}" for i in range(500)], rows),
            "seen_at": (start + pd.to_timedelta(rng.integers(0, days * 86400, rows), unit="s")).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "spend": (rng.gamma(2.0, 35.0, rows) + 25 * score).round(2).clip(0),
            "signal": score.round(4),
            "basket_items": rng.integers(1, 12, rows),
            "channel": rng.choice(["web", "app", "store"], rows),
        }
    )


def _timed(command: list[str], env: dict[str, str], what: str) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return seconds, out.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args(argv)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    env = _environment()
    setup = time.perf_counter()
    prepare_metadata_db(env)
    setup_seconds = time.perf_counter() - setup
    data = WORK / "events.csv"
    events(args.rows, args.days).to_csv(data, index=False)

    scaffold_seconds, printed = _timed(
        [
            sys.executable,
            "-m",
            "include.scaffold",
            *("--data", str(data), "--label", "spend * 2 > 150", "--timestamp", "seen_at", "--entity", "account"),
            *("--name", MODEL, "--project-root", str(WORK / "project"), "--force"),
        ],
        env,
        "the scaffold",
    )
    print(printed)
    as_of = (pd.Timestamp("2026-05-01") + pd.Timedelta(days=args.days - 1)).strftime("%Y-%m-%d")
    code = _TRAIN.format(
        dag_id=f"{MODEL}__training", dags=str(ROOT / "dags"), conf={"as_of": as_of, "window_days": args.days}
    )
    train_seconds, printed = _timed([sys.executable, "-c", code], env, "the training DAG")
    outcome = json.loads(printed.strip().splitlines()[-1])
    states, task_seconds = outcome["states"], outcome["seconds"]
    failed = {t: s for t, s in states.items() if s not in ("success", "skipped")}
    total = scaffold_seconds + train_seconds
    records = [
        record("setup (db migrate, pool; once)", setup_seconds, "s"),
        record(f"scaffold ({args.rows} rows, {args.days} days)", scaffold_seconds, "s"),
        record("training DAG to a served model", train_seconds, "s"),
        record("data file to served model", total, "s", TARGET_SECONDS),
    ]
    emit("new_model", records)
    print(f"task states: {states}")
    print("task seconds: " + ", ".join(f"{t} {s:.1f}" for t, s in sorted(task_seconds.items(), key=lambda x: -x[1])))
    if failed:
        print(f"NOT SERVED: tasks not successful {failed}; Airflow's logs are under {WORK / 'airflow'}")
        return 1
    if states.get("smoke_test") != "success":
        print(f"NOT SERVED: the smoke test did not run ({states}); Airflow's logs are under {WORK / 'airflow'}")
        return 1
    verdict = "within" if total <= TARGET_SECONDS else "OVER"
    print(f"data file to served model: {total:.1f} s, {verdict} the {TARGET_SECONDS:.0f} s target")
    return 0 if total <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
