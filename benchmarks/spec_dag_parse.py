"""Parse time of the spec-generated DAGs: ``dags/model_specs.py`` in Airflow's DagBag for N = 1, 5, 20 specs.

Each N gets its own folder of synthetic specs (``[mlops] model_specs_folder``) and a fresh interpreter, in which
``airflow`` and the ``DagBag`` class are imported first; the span measured is filling the DagBag from the loader
file (reading and validating the specs, building 3 DAGs per spec). Reported: seconds in total, per DAG, and the
ratio of each to the N=1 baseline of the same run. Target: under 0.3 s per generated DAG.
Usage: python benchmarks/spec_dag_parse.py [--sizes 1 5 20] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _records import emit, record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOADER = ROOT / "dags" / "model_specs.py"
TARGET_SECONDS = 0.3

_TIMER = """
import time
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder={loader!r})
t1 = time.perf_counter()
print(__import__("json").dumps({{"seconds": t1 - t0, "dags": len(bag.dag_ids), "errors": len(bag.import_errors)}}))
"""


def synthetic_spec(i: int) -> dict:
    """A spec with every section used: two entities, aggregates with lag, a static table, request features."""
    return {
        "name": f"bench_model_{i}",
        "dataset": f"bench_events_{i}",
        "contract": {
            "dataset": f"bench_events_{i}",
            "timestamp_column": "happened_at",
            "columns": {
                "event_id": {"type": "string", "nullable": False, "unique": True},
                "account_ref": {"type": "int64"},
                "site_code": {"type": "string"},
                "happened_at": {"type": "timestamp"},
                "value_a": {"type": "float64"},
                "value_b": {"type": "int64"},
                "kind": {"type": "string"},
                "outcome_raw": {"type": "float64"},
                "outcome": {"type": "int64"},
            },
        },
        "derive": {"outcome": "outcome_raw > 0.5"},
        "entities": {"account_ref": "int64", "site_code": "string"},
        "timestamp_column": "happened_at",
        "label": "outcome",
        "task": "binary",
        "features": {
            "aggregates": [
                {"entity": "account_ref", "functions": ["count"], "windows": ["1d", "7d"]},
                {
                    "entity": "site_code",
                    "column": "outcome",
                    "functions": ["mean"],
                    "windows": ["7d"],
                    "label_lag": "1d",
                },
            ],
            "static": [
                {
                    "name": "sites",
                    "entity": "site_code",
                    "path": "{data_root}/static/sites.parquet",
                    "features": {"site_size": "int64"},
                }
            ],
            "request": ["value_a", "value_b"],
            "categoricals": ["kind"],
        },
        "gate": {"criteria": {"min_metrics": {"roc_auc": 0.7}}},
        "drift": {"schedule": f"{i % 60} */6 * * *"},
    }


def _parse(folder: Path) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "providers" / "mlops" / "src")]),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__MLOPS__PROJECT_ROOT=str(ROOT),
        AIRFLOW__MLOPS__MODEL_SPECS_FOLDER=str(folder),
    )
    out = subprocess.run(
        [sys.executable, "-c", _TIMER.format(loader=str(LOADER))], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if out.returncode != 0:
        raise RuntimeError(f"parsing {LOADER.name} with {folder} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(sizes: tuple[int, ...] = (1, 5, 20), repeat: int = 1) -> dict[int, tuple[float, int]]:
    """Return ``{N: (median seconds to fill the DagBag, DAGs parsed)}``."""
    results: dict[int, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="spec-dag-parse-") as tmp:
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            for i in range(n):
                (folder / f"bench_model_{i}.yaml").write_text(yaml.safe_dump(synthetic_spec(i), sort_keys=False))
            runs = [_parse(folder) for _ in range(repeat)]
            for run in runs:
                if run["errors"] or run["dags"] != 3 * n:
                    raise RuntimeError(
                        f"N={n}: {run['dags']} DAGs, {run['errors']} import errors (expected {3 * n}, 0)"
                    )
            results[n] = (statistics.median(r["seconds"] for r in runs), runs[0]["dags"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    results = measure(tuple(args.sizes), args.repeat)
    base_total, base_dags = results[args.sizes[0]]
    base_per_dag = base_total / base_dags
    records = []
    for n, (seconds, dags) in results.items():
        records.append(record(f"N={n} specs ({dags} DAGs): total", seconds, "s", base_total))
        records.append(record(f"N={n} specs ({dags} DAGs): per DAG", seconds / dags, "s", base_per_dag))
    emit("spec_dag_parse", records)
    worst = max(seconds / dags for seconds, dags in results.values())
    print(
        f"worst per generated DAG: {worst:.3f} s (target < {TARGET_SECONDS} s): {'OK' if worst < TARGET_SECONDS else 'OVER'}"
    )


if __name__ == "__main__":
    main()
