"""Resolve a model's storage URI to a local folder and find the XGBoost model file in it.

Supported URIs: a local path, ``file://``, ``s3://``, ``gs://`` (through ``pyarrow.fs``, credentials from the
usual environment of each cloud SDK), MLflow registry URIs ``models:/<name>/<version>`` or
``models:/<name>@<alias>``, and the tracking server's ``mlflow-artifacts:/`` and ``runs:/`` URIs (resolved through the MLflow tracking server named by ``MLFLOW_TRACKING_URI`` or
``--mlflow_tracking_uri``). In KServe the storage initializer usually downloads the model to ``/mnt/models``
first, and the server is pointed at that folder.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

logger = logging.getLogger(__name__)

# Model file names XGBoost and MLflow's xgboost flavour write, in order of preference.
MODEL_FILE_NAMES = ("model.ubj", "model.json", "model.xgb", "model.bst", "model.bin")
MODEL_SUFFIXES = (".ubj", ".json", ".xgb", ".bst", ".bin", ".model")
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")


class ModelStorageError(RuntimeError):
    """The model could not be found or downloaded; the message names the URI and what is missing."""


def _download_with_pyarrow(uri: str, dest: Path) -> Path:
    from pyarrow import fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise ModelStorageError(f"Model storage URI {uri} does not exist.")
    if info.type == pafs.FileType.File:
        target = dest / Path(path).name
        pafs.copy_files(path, str(target), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
        return dest
    pafs.copy_files(path, str(dest), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
    return dest


def _resolve_models_uri(uri: str, tracking_uri: str | None) -> tuple[str, str]:
    """Turn ``models:/name@alias`` or ``models:/name/version`` into the version's artifact storage URI."""
    from mlflow import MlflowClient

    match = _MODELS_URI.match(uri)
    if match is None:
        raise ModelStorageError(
            f"{uri!r} is not an MLflow model URI (models:/<name>/<version> or models:/<name>@<alias>)."
        )
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = match["name"]
    try:
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"]).version
        else:
            version = match["version"]
        return client.get_model_version_download_uri(name, version), str(version)
    except Exception as exc:  # MLflow raises its own RestException/MlflowException types
        raise ModelStorageError(
            f"Could not resolve {uri} through MLflow at {tracking_uri or 'MLFLOW_TRACKING_URI'}: {exc}"
        ) from exc


def resolve_model_dir(storage_uri: str, *, tracking_uri: str | None = None, download_root: str | None = None) -> Path:
    """Return a local folder (or file) holding the model that ``storage_uri`` points at."""
    return resolve_model(storage_uri, tracking_uri=tracking_uri, download_root=download_root)[0]


def resolve_model(
    storage_uri: str, *, tracking_uri: str | None = None, download_root: str | None = None
) -> tuple[Path, str | None]:
    """Return ``(local folder or file, registry version or None)`` for the model at ``storage_uri``.

    :param storage_uri: local path, ``file://``, ``s3://``, ``gs://`` or ``models:/`` URI.
    :param tracking_uri: MLflow tracking URI for ``models:/`` URIs; default ``MLFLOW_TRACKING_URI``.
    :param download_root: folder for downloads of remote URIs; default a fresh temporary folder.
    """
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    version = None
    if storage_uri.startswith("models:/"):
        resolved, version = _resolve_models_uri(storage_uri, tracking_uri)
        logger.info("Resolved %s to %s", storage_uri, resolved)
        storage_uri = resolved
    if storage_uri.startswith(("models:/", "mlflow-artifacts:", "runs:/")):
        # Artifacts proxied by the tracking server: let MLflow download them.
        import mlflow.artifacts

        dest = tempfile.mkdtemp(prefix="model-", dir=download_root)
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=storage_uri, dst_path=dest, tracking_uri=tracking_uri
        )
        return Path(downloaded), version
    parsed = urlparse(storage_uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else storage_uri)
        if not path.exists():
            raise ModelStorageError(f"Model path {path} (from {storage_uri}) does not exist.")
        return path, version
    if parsed.scheme in ("s3", "gs", "gcs"):
        target = Path(tempfile.mkdtemp(prefix="model-", dir=download_root))
        return _download_with_pyarrow(storage_uri, target), version
    raise ModelStorageError(
        f"Unsupported model storage URI scheme {parsed.scheme!r} in {storage_uri}; use file://, s3://, gs:// or models:/."
    )


def find_model_file(model_dir: Path) -> Path:
    """Return the XGBoost model file inside an MLflow model folder, a plain folder, or the file itself.

    An MLflow model folder is read through its ``MLmodel`` file (the xgboost flavour's ``data`` entry);
    otherwise the first ``model.*`` file with a known XGBoost suffix is used.
    """
    if model_dir.is_file():
        return model_dir
    mlmodel = model_dir / "MLmodel"
    if mlmodel.is_file():
        spec = yaml.safe_load(mlmodel.read_text()) or {}
        data = (spec.get("flavors", {}).get("xgboost") or {}).get("data")
        if data and (model_dir / data).is_file():
            return model_dir / data
    for name in MODEL_FILE_NAMES:
        if (model_dir / name).is_file():
            return model_dir / name
    candidates = sorted(
        p for p in model_dir.rglob("*") if p.is_file() and p.suffix in MODEL_SUFFIXES and p.name != "MLmodel"
    )
    candidates = [p for p in candidates if p.suffix != ".json" or p.stem.startswith("model")]
    if candidates:
        return candidates[0]
    listing = ", ".join(sorted(p.name for p in model_dir.iterdir())[:20]) or "(empty)"
    raise ModelStorageError(
        f"No XGBoost model file in {model_dir} (looked for an MLmodel xgboost flavour, {', '.join(MODEL_FILE_NAMES)}); "
        f"found: {listing}."
    )


def model_version_from_dir(model_dir: Path) -> str | None:
    """Read the MLflow model version recorded next to the model, if any (``registered_model_version``)."""
    mlmodel = model_dir / "MLmodel" if model_dir.is_dir() else None
    if mlmodel is None or not mlmodel.is_file():
        return None
    spec = yaml.safe_load(mlmodel.read_text()) or {}
    version = spec.get("registered_model_version") or spec.get("model_version")
    return str(version) if version is not None else None
