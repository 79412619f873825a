"""Train the XGBoost model on a training-set snapshot: one operator per backend, chosen when the DAG is built.

* :class:`~mlops_provider.operators.training_local.XGBoostTrainLocalOperator`: a subprocess on the worker.
* :class:`~mlops_provider.operators.training_kubernetes.XGBoostTrainKubernetesOperator`: a (GPU) pod, as a
  KubernetesPodOperator.
* :class:`~mlops_provider.operators.training_vertex.XGBoostTrainVertexOperator`: a Vertex AI CustomJob
  through :class:`~mlops_provider.hooks.vertex.VertexTrainingHook`.
* :class:`~mlops_provider.operators.training_dask.XGBoostTrainDaskOperator`: ``xgboost.dask`` on a LocalCluster of
  worker processes (or a ``dask`` connection's scheduler); its ``XGBoostTrainDaskJobOperator`` runs a DaskJob.

:func:`training_operator_class` maps ``[mlops] training_backend`` (or a given backend) to the class, the
way cosmos maps an execution mode to an operator module; the Kubernetes and Vertex modules are imported
only when chosen, so a DAG file on the local backend never loads the Kubernetes client.

Every backend runs the same trainer (``python -m include.trainer``) with the arguments and idempotency key
of :mod:`mlops_provider.training.launch`, and returns a :class:`~mlops_provider.payloads.TrainingResult`
(plus ``backend``) read back from MLflow by that key. ``render_only=True`` writes the exact command, pod
or CustomJob that would be submitted to ``<local_root>/render/`` and submits nothing.
"""

from __future__ import annotations

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import TrainingFailedError
from mlops_provider.operators.training_local import XGBoostTrainLocalOperator
from mlops_provider.settings import TRAINING_BACKENDS, get_settings

__all__ = ["XGBoostTrainLocalOperator", "training_operator_class"]


def training_operator_class(backend: str | None = None, *, dask_cluster: str = "local") -> type[BaseOperator]:
    """Return the training operator class of ``backend`` (default ``[mlops] training_backend``).

    Call it when the DAG is built: ``training_operator_class()(task_id="train", model_name=..., ...)``.
    Every class takes ``model_name``, ``training_set``, ``params_file``, ``run_name`` and ``mlflow_conn_id``;
    backend-specific arguments belong to the class itself. ``dask_cluster="kubernetes"`` picks the dask
    backend's DaskJob operator instead of its LocalCluster one.
    """
    backend = backend or get_settings().training_backend
    if backend == "local":
        return XGBoostTrainLocalOperator
    if backend == "kubernetes":
        from mlops_provider.operators.training_kubernetes import XGBoostTrainKubernetesOperator

        return XGBoostTrainKubernetesOperator
    if backend == "vertex":
        from mlops_provider.operators.training_vertex import XGBoostTrainVertexOperator

        return XGBoostTrainVertexOperator
    if backend == "dask":
        from mlops_provider.operators.training_dask import XGBoostTrainDaskJobOperator, XGBoostTrainDaskOperator

        return XGBoostTrainDaskJobOperator if dask_cluster == "kubernetes" else XGBoostTrainDaskOperator
    raise TrainingFailedError(f"training backend {backend!r} is not one of {', '.join(TRAINING_BACKENDS)}")
