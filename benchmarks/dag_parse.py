"""DAG-file import time, each file in a fresh interpreter, minus ``import airflow.sdk`` alone.

Heavy libraries (mlflow, feast, evidently, xgboost: 3.5-8 s each here) must never load at parse
time; this measures what a DAG processor pays per file on top of the SDK itself.
Usage: python benchmarks/dag_parse.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _records import emit, record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.3

_TIMER = """
import time, runpy, sys
t0 = time.perf_counter()
{body}
print(time.perf_counter() - t0)
"""


def _time(body: str, repeat: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    samples = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _TIMER.format(body=body)], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"timing {body!r} failed:\n{out.stderr[-2000:]}")
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def measure(repeat: int = 3) -> dict[str, float]:
    """Return seconds per DAG file (median of ``repeat`` fresh interpreters) minus the SDK's own import."""
    sdk = _time("import airflow.sdk", repeat)
    results = {"import airflow.sdk": sdk}
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        total = _time(f"import airflow.sdk\nrunpy.run_path({str(dag_file)!r})", repeat)
        results[dag_file.name] = max(total - sdk, 0.0)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = measure(args.repeat)
    sdk = results.pop("import airflow.sdk")
    records = [record("import airflow.sdk (subtracted)", sdk, "s")]
    records += [record(f"parse {name}", seconds, "s") for name, seconds in results.items()]
    emit("dag_parse", records)
    worst = max(results.values())
    print(f"worst DAG file: {worst:.3f} s (target < {TARGET_SECONDS} s): {'OK' if worst < TARGET_SECONDS else 'OVER'}")


if __name__ == "__main__":
    main()
