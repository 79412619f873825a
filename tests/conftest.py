"""Test harness: a private Airflow home on SQLite, the bundle's DAGs folder, and shared fixtures.

Environment is set here, before anything imports Airflow, so every test (and every subprocess it
starts) sees the same isolated configuration. Fixture modules under ``tests/fixtures/`` load as
plugins, so each area of the suite can add its own servers without editing this file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# One Airflow home per pytest process, so concurrent sessions never share (or wipe) a metadata DB.
TEST_HOME = REPO_ROOT / "build" / "test-airflow" / str(os.getpid())

os.environ["AIRFLOW_HOME"] = str(TEST_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
# Two bundles: the product's DAGs and small DAGs that drive single operators through Airflow in tests.
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO_ROOT / "dags")},
        },
        {
            "name": "test-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO_ROOT / "tests" / "dag_files")},
        },
    ]
)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__MLOPS__PROJECT_ROOT"] = str(REPO_ROOT)
os.environ["AIRFLOW__MLOPS__LOCAL_ROOT"] = str(TEST_HOME / "mlops")
# The fake cluster's kubelet and KServe run workloads on this machine, so its paths are theirs (tests of the
# check itself turn this off).
os.environ["AIRFLOW__MLOPS__CLUSTER_SHARES_LOCAL_PATHS"] = "True"
os.environ.setdefault("PYTHONPATH", str(REPO_ROOT))
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (REPO_ROOT / "tests" / "fixtures").glob("*.py") if p.stem != "__init__"
)


def pytest_configure(config: pytest.Config) -> None:
    """Start every session from an empty Airflow home with a migrated SQLite metadata DB.

    Under pytest-xdist each worker is its own process with its own home; the controller runs no tests.
    """
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    for stale in TEST_HOME.parent.glob("*"):
        if stale.name.isdigit() and not Path(f"/proc/{stale.name}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(TEST_HOME, ignore_errors=True)
    TEST_HOME.mkdir(parents=True)
    from include.airflow_runner import prepare_metadata_db

    prepare_metadata_db(os.environ.copy())


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
