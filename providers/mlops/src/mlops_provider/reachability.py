"""Whether a URI handed to a cluster (a training pod, a Vertex AI job, an InferenceService) can be read there.

A ``file://`` URI or a bare path names a file on the Airflow machine: a pod or a cloud job sees its own
filesystem, so launching with one fails minutes later, far from the cause. Launchers call
:func:`require_cluster_reachable` before they submit anything; ``make render`` reports
:func:`machine_local_uris` of every object. ``[mlops] cluster_shares_local_paths`` is the way out for clusters
that mount this machine's paths at the same place (a single-node kind cluster, an NFS share, the fake cluster of
the tests).
"""

from __future__ import annotations

from typing import Any

from mlops_provider.settings import MlopsConfigError, get_settings

#: Schemes that only name something on this machine.
_LOCAL_SCHEMES = ("file:",)
#: Where each kind of URI is configured: the setting a user changes to make it cluster-reachable.
DATA_ROOT_SETTING = "[mlops] data_root (AIRFLOW__MLOPS__DATA_ROOT)"
ARTIFACT_STORE_SETTING = (
    "the MLflow server's artifact store (mlflow server --artifacts-destination s3://... or gs://..., behind the "
    "[mlops] mlflow_conn_id connection)"
)
#: Command-line flags whose value is a URI the workload reads.
_URI_FLAGS = ("--training-set-uri", "--storage_uri")
#: Paths inside containers (KServe's storage initializer downloads there): not machine-local.
_CONTAINER_PATHS = ("/mnt/models",)


def is_machine_local(uri: str) -> bool:
    """True for ``file:`` URIs and bare paths; False for ``s3://``, ``gs://``, ``models:/``, ``pvc://`` and the like."""
    text = uri.strip()
    if text.startswith(_LOCAL_SCHEMES):
        return True
    return ":/" not in text and not text.startswith(_CONTAINER_PATHS)


def require_cluster_reachable(uri: str, *, what: str, reader: str, setting: str) -> None:
    """Raise :class:`MlopsConfigError` when ``reader`` (e.g. "the training pod") could not read ``uri``.

    :param what: what the URI is ("training set", "model artifacts").
    :param setting: the setting to change so that it lives in shared storage.
    """
    if not is_machine_local(uri) or get_settings().cluster_shares_local_paths:
        return
    raise MlopsConfigError(
        f"{reader} cannot read the {what} at {uri}: it is a path on this machine, not in storage the cluster "
        f"reaches. Set {setting} to an s3:// or gs:// location (or set [mlops] cluster_shares_local_paths = True "
        "if every node mounts this path at the same place)."
    )


def machine_local_uris(obj: dict[str, Any]) -> list[str]:
    """The machine-local URIs a rendered Kubernetes object hands to its workload (``storageUri``, URI flags)."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("storageUri", "uri") and isinstance(value, str) and is_machine_local(value):
                    found.append(value)
                elif key in ("args", "command") and isinstance(value, list):
                    scan_arguments([str(v) for v in value])
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    def scan_arguments(args: list[str]) -> None:
        for i, arg in enumerate(args):
            for flag in _URI_FLAGS:
                value = None
                if arg.startswith(f"{flag}="):
                    value = arg.split("=", 1)[1]
                elif arg == flag and i + 1 < len(args):
                    value = args[i + 1]
                if value is not None and is_machine_local(value):
                    found.append(value)

    visit(obj.get("spec") or {})
    return found
