"""``make render``: write every Kubernetes object the pipeline would submit, as YAML, for review and GitOps.

Uses the current configuration (``AIRFLOW__MLOPS__*``); needs no cluster. One file per object:
``build/manifests/<kind>-<name>.yaml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render_all() -> list[dict]:
    """Return the training pod and DaskJob (with their RBAC), the KServe deployer's RBAC, the serving and shadow objects."""
    from include.fraud_example import DATASET, FEATURE_SERVICE, MODEL_NAME
    from mlops_provider.operators.training_dask import render_dask_training_manifests
    from mlops_provider.operators.training_kubernetes import render_training_manifests
    from mlops_provider.serving.manifests import render_kserve_rbac, render_serving_manifests, render_shadow_manifests
    from mlops_provider.settings import get_settings

    settings = get_settings()
    # The shipped example unless [mlops] model_name names another model.
    model_name = settings.model_name or MODEL_NAME
    feature_service = None if settings.model_name else FEATURE_SERVICE
    return [
        *render_training_manifests(settings, model_name=model_name, dataset=DATASET),
        # The dask backend on Kubernetes: the DaskJob beside the GPU pod, and what launching it needs.
        *render_dask_training_manifests(settings, model_name=model_name, dataset=DATASET),
        *render_kserve_rbac(settings.namespace),
        *render_serving_manifests(settings, model_name=model_name, feature_service=feature_service),
        # The challenger and the Istio VirtualService/DestinationRule that mirror the champion's traffic to it.
        *render_shadow_manifests(settings, model_name=model_name),
    ]


def write_manifests(objects: list[dict], out: Path) -> list[Path]:
    """Write each object to ``out`` and return the paths, replacing what an earlier render left."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.yaml"):
        stale.unlink()
    paths = []
    for obj in objects:
        name = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path = out / name
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "manifests")
    args = parser.parse_args()
    objects = render_all()
    for path in write_manifests(objects, args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    for warning in reachability_warnings(objects):
        print(f"WARNING: {warning}", file=sys.stderr)


def reachability_warnings(objects: list[dict]) -> list[str]:
    """One line per object that hands its workload a path on this machine (no pod can read it there)."""
    from mlops_provider.reachability import machine_local_uris

    return [
        f"{obj['kind']}/{obj['metadata']['name']} reads {uri}, a path on this machine: set [mlops] data_root and "
        "the MLflow artifact store to s3:// or gs:// before applying it to a cluster."
        for obj in objects
        for uri in machine_local_uris(obj)
    ]


if __name__ == "__main__":
    main()
