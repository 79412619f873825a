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

# Both spans in one fresh interpreter: the DAG file's own cost is what it adds after the SDK is loaded.
_TIMER = """
import time, runpy
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
runpy.run_path({path!r})
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def _time(dag_file: Path, repeat: int) -> tuple[float, float]:
    # The caller's path stays after the bundle's (a provider checkout on it wins over an installed copy).
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, AIRFLOW__CORE__LOAD_EXAMPLES="False")
    sdk, own = [], []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _TIMER.format(path=str(dag_file))], capture_output=True, text=True, env=env
        )
        if out.returncode != 0:
            raise RuntimeError(f"parsing {dag_file.name} failed:\n{out.stderr[-2000:]}")
        first, second = out.stdout.strip().splitlines()[-1].split()
        sdk.append(float(first))
        own.append(float(second))
    return statistics.median(sdk), statistics.median(own)


def measure(repeat: int = 3) -> dict[str, float]:
    """Return seconds per DAG file beyond ``import airflow.sdk`` (median of ``repeat`` fresh interpreters).

    The key ``import airflow.sdk`` holds the SDK's own import time, measured in the same interpreters.
    """
    results: dict[str, float] = {}
    sdk_times = []
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        sdk, own = _time(dag_file, repeat)
        sdk_times.append(sdk)
        results[dag_file.name] = own
    return {"import airflow.sdk": statistics.median(sdk_times), **results}


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
