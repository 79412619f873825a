"""Fault points: unarmed they do nothing; armed for a DAG they SIGKILL the first process that reaches them, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mlops_provider.utils.faults import PLAN_ENV

REACH = "from mlops_provider.utils.faults import fault_point; fault_point('deploy.after_patch'); print('survived')"


def _reach(tmp_path, dag_id: str, plan: bool = True) -> subprocess.CompletedProcess:
    env = {"AIRFLOW_CTX_DAG_ID": dag_id, "PATH": "/usr/bin:/bin"}
    if plan:
        env[PLAN_ENV] = str(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-c", REACH], env=env, capture_output=True, text=True, timeout=60)


def test_an_armed_point_kills_the_first_process_of_its_dag_once(tmp_path):
    (tmp_path / "pipeline.deploy.after_patch").write_text("")
    first = _reach(tmp_path, "pipeline")
    assert first.returncode == -signal.SIGKILL and "survived" not in first.stdout
    assert (tmp_path / "pipeline.deploy.after_patch.fired").exists()
    second = _reach(tmp_path, "pipeline")  # the retry passes the point
    assert second.returncode == 0 and "survived" in second.stdout


def test_a_point_armed_for_another_dag_or_without_a_plan_does_nothing(tmp_path):
    (tmp_path / "other.deploy.after_patch").write_text("")
    assert _reach(tmp_path, "pipeline").returncode == 0
    assert _reach(tmp_path, "other", plan=False).returncode == 0
    assert (tmp_path / "other.deploy.after_patch").exists()
