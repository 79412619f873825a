"""``make up``: ``airflow standalone`` with the bundle's DAGs loaded and unpaused, UI on localhost:8080."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from include.airflow_runner import create_pools

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = dict(
        os.environ,
        # standalone starts its components as `airflow ...` subprocesses: they must find this venv's airflow.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # The bundle's DAGs are meant to run: drift checks on their schedule, training on its assets.
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__API__PORT=os.environ.get("AIRFLOW__API__PORT", "8080"),
    )
    create_pools(env)
    # Register the bundle's DAGs now and unpause them, also when an earlier run (e.g. `make demo`) created them paused.
    subprocess.run([airflow, "dags", "reserialize"], check=True, env=env, stdout=subprocess.DEVNULL)
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        subprocess.run(
            [airflow, "dags", "unpause", "--yes", dag_file.stem], check=True, env=env, stdout=subprocess.DEVNULL
        )
    print("Airflow UI: http://localhost:8080 (the admin password is printed by airflow standalone below)")
    os.execve(airflow, [airflow, "standalone"], env)


if __name__ == "__main__":
    main()
