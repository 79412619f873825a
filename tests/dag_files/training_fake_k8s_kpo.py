"""The stock KubernetesPodOperator (sync and deferrable) against the fake cluster (``fake_k8s`` fixture)."""

from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import dag


@dag(dag_id="training_fake_k8s_kpo", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def training_fake_k8s_kpo():
    for deferrable in (False, True):
        KubernetesPodOperator(
            task_id=f"kpo_{'deferrable' if deferrable else 'sync'}",
            kubernetes_conn_id="fake_k8s",
            namespace="default",
            image="busybox:1.36",
            cmds=["echo", "hi"],
            deferrable=deferrable,
            poll_interval=0.2,
            startup_check_interval_seconds=0.2,
            on_finish_action="delete_pod",
            get_logs=True,
        )


training_fake_k8s_kpo()
