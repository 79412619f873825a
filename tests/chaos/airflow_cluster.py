"""A real Airflow on loopback for the chaos suite: scheduler (LocalExecutor), DAG processor and API server.

Its own Airflow home and SQLite metadata DB (the rest of the suite's ``dag.test()`` runs never share it), one DAG
bundle (``tests/chaos/dags``), every component a separate ``airflow`` process as in production. Runs are triggered
and read through the public REST API, so the test sees what a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.airflow_runner import prepare_metadata_db
from tests.loopback import free_port, wait_ready

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS = Path(__file__).resolve().parent / "dags"
TERMINAL = {"success", "failed"}


@dataclass
class ChaosAirflow:
    """Handle on the running Airflow: trigger runs, wait for them, read task instances, arm fault points."""

    base_url: str
    home: Path
    fault_plan: Path
    env: dict[str, str]
    logs: list[Path] = field(default_factory=list)

    def request(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}/api/v2{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode()[:2000]}") from None

    def arm(self, dag_id: str, point: str) -> Path:
        """Arm ``point`` for the next task of ``dag_id`` that reaches it (fires once)."""
        armed = self.fault_plan / f"{dag_id}.{point}"
        armed.write_text("")
        return armed

    def fired(self, dag_id: str, point: str) -> bool:
        return (self.fault_plan / f"{dag_id}.{point}.fired").exists()

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180.0) -> None:
        deadline = time.time() + timeout
        missing = set(dag_ids)
        while time.time() < deadline:
            listed = self.request("GET", "/dags?limit=200")["dags"]
            missing = set(dag_ids) - {d["dag_id"] for d in listed}
            if not missing:
                return
            time.sleep(1)
        errors = self.request("GET", "/importErrors")
        raise AssertionError(f"DAGs never parsed: {sorted(missing)}; import errors: {errors}")

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def wait(self, dag_id: str, run_id: str, timeout: float = 900.0) -> str:
        """Wait until the run is over; return its state."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in TERMINAL:
                return state
            time.sleep(1)
        raise AssertionError(
            f"{dag_id}/{run_id} not finished after {timeout:.0f} s: {self.task_instances(dag_id, run_id)}"
        )

    def wait_idle(self, timeout: float = 1800.0) -> None:
        """Wait until no DAG run is queued or running (the previous wave is over)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            active = self.request("GET", "/dags/~/dagRuns?state=queued&state=running&limit=100")["dag_runs"]
            if not active:
                return
            time.sleep(2)
        raise AssertionError(f"runs still active after {timeout:.0f} s: {[r['dag_run_id'] for r in active]}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        """task_id -> {"state", "try_number"} (the latest try)."""
        listed = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: {"state": ti["state"], "try_number": ti["try_number"]} for ti in listed}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        try:
            return self.request("GET", path)["value"]
        except AssertionError as exc:
            if " 404 " in str(exc):
                return None
            raise

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        content = self.request("GET", path).get("content")
        if isinstance(content, list):
            # Structured lines: the event text plus its fields (the exception's type and message are fields).
            return "\n".join(json.dumps(line, default=str) if isinstance(line, dict) else str(line) for line in content)
        return str(content)


@contextmanager
def running_airflow(root: Path, extra_env: dict[str, str], dags: Path = DAGS):
    """Start the components with ``dags`` as the DAG bundle; yield a :class:`ChaosAirflow`; stop everything on exit."""
    home = root / "airflow"
    home.mkdir(parents=True)
    plan = root / "faults"
    plan.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__") and not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Two CPU cores: a few concurrent tasks, each allowed a slow parse under load.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "180",
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
                [
                    {
                        "name": "chaos",
                        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                        "kwargs": {"path": str(dags)},
                    }
                ]
            ),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "MLOPS_FAULT_PLAN": str(plan),
            **extra_env,
        }
    )
    prepare_metadata_db(env)
    scheduler_health = f"http://127.0.0.1:{env['AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT']}/health"
    logs = [root / name for name in ("api-server.log", "scheduler.log", "dag-processor.log")]
    with ExitStack() as stack:
        api = stack.enter_context(
            _component([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)], logs[0], env)
        )
        wait_ready(f"{base}/api/v2/monitor/health", api, logs[0], timeout=180)
        stack.enter_context(_component([AIRFLOW, "dag-processor"], logs[2], env))
        scheduler = stack.enter_context(_component([AIRFLOW, "scheduler"], logs[1], env))
        wait_ready(scheduler_health, scheduler, logs[1], timeout=180)
        yield ChaosAirflow(base_url=base, home=home, fault_plan=plan, env=env, logs=logs)


@contextmanager
def _component(command: list[str], log: Path, env: dict[str, str]):
    """Run an Airflow component in its own process group; stop the whole group (the executor's workers too)."""
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield process
    finally:
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers outliving their parent
