"""``make up``: ``airflow standalone`` with the bundle's DAGs loaded and unpaused, UI on localhost:8080."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from include.airflow_runner import create_pools

ROOT = Path(__file__).resolve().parents[1]


def start_prometheus() -> None:
    """Start Debian's Prometheus (when installed) on 127.0.0.1:9090, the Prometheus connection's local default.

    It scrapes the local endpoint every 5 s, and the model servers listed in ``<local_root>/prometheus/targets/*.json``
    (Prometheus file discovery: the local backend's slots run on free ports). It stops with ``make up`` (Ctrl-C reaches
    the whole process group).
    """
    binary = shutil.which("prometheus")
    if binary is None:
        print("Prometheus not installed (apt-get install prometheus): the live analysis reads the prediction log.")
        return
    from mlops_provider.serving.local import prometheus_targets_dir
    from mlops_provider.settings import get_settings

    settings = get_settings()
    home = Path(settings.local_root) / "prometheus"
    targets = prometheus_targets_dir(settings)  # the local backend writes its slots there
    targets.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "5s"},
        "scrape_configs": [
            {
                "job_name": "model-servers",
                "static_configs": [{"targets": [f"127.0.0.1:{settings.local_serving_port}"]}],
                "file_sd_configs": [{"files": [str(targets / "*.json")]}],
            }
        ],
    }
    (home / "prometheus.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    with (home / "prometheus.log").open("ab") as log:
        subprocess.Popen(
            [binary, f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
             "--web.listen-address=127.0.0.1:9090"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    print(f"Prometheus: http://127.0.0.1:9090 (log {home / 'prometheus.log'})")


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
    start_prometheus()
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
