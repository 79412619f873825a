"""What every chaos DAG shares: ``retries=1`` with a one-second delay, inputs from ``dag_run.conf``, fast polling.

Outside the DAG folder, so each DAG file imports only the operators it runs (a task parses only its own file:
on two busy cores that parse is most of a short task's time).
"""

from __future__ import annotations

import pendulum

COMMON = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "render_template_as_native_obj": True,
    "max_active_runs": 4,
    "tags": ["chaos"],
    "default_args": {"retries": 1, "retry_delay": pendulum.duration(seconds=1)},
}
CONF = "{{{{ dag_run.conf['{}'] }}}}".format
TRAIN = {"model_name": CONF("model_name"), "training_set": CONF("training_set"), "params_file": CONF("params_file")}
# Fast analysis and polling: the scenarios judge retries, not latency.
DEPLOY = {
    "model_name": CONF("model_name"),
    "backend": "kserve",
    "deferrable": False,
    "analysis_interval": 0.1,
    "analysis_iterations": 2,
    "failure_threshold": 2,
    "smoke_requests": 4,
    "poll_interval": 0.2,
    "max_latency_ms": 5000,
    "progress_deadline": 60,
}
