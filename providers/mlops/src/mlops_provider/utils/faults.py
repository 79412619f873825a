"""Named fault points: where the chaos suite kills a task process to prove retries and cleanup are right.

The failpoint pattern (etcd's gofail, TiKV's fail-rs): production code marks the moments where a crash is
most harmful (a version registered but not yet returned, an InferenceService patched but not yet analysed),
and a test arms one of them. Unarmed, a fault point is one environment lookup.

A point is armed by creating the file ``<MLOPS_FAULT_PLAN>/<dag_id>.<point>``. The first task process of that
DAG to reach the point renames the file (an atomic claim, so it fires exactly once, even when two runs race)
and SIGKILLs itself, as the kernel's OOM killer or a lost node would: no ``finally``, no ``on_kill``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

PLAN_ENV = "MLOPS_FAULT_PLAN"
FIRED_SUFFIX = ".fired"


def fault_point(name: str) -> None:
    """SIGKILL this process when ``name`` is armed for the running DAG (once); otherwise do nothing."""
    plan = os.environ.get(PLAN_ENV)
    if not plan:
        return
    dag_id = os.environ.get("AIRFLOW_CTX_DAG_ID", "")
    armed = Path(plan) / f"{dag_id}.{name}"
    try:
        armed.rename(armed.with_name(armed.name + FIRED_SUFFIX))
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
