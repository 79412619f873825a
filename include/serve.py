"""``make serve``: serve the current ``champion`` on the local endpoint, in the foreground.

Starts (or takes over) the local endpoint ``http://127.0.0.1:<[mlops] local_serving_port>`` with the model version
the ``champion`` alias points to: the KServe predictor, the Feast transformer in front of it when the feature
store has been applied, and the stable-port proxy, all from the serving environment. Prints the model, version
and port; Ctrl-C (or SIGTERM) stops every process cleanly (the prediction log is flushed on the way out).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from mlops_provider.lineage import CHAMPION


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-name", help="registered model (default [mlops] model_name, else the shipped example's model)"
    )
    parser.add_argument("--alias", default=CHAMPION, help="registry alias to serve (default champion)")
    parser.add_argument("--no-transformer", action="store_true", help="serve the predictor alone")
    args = parser.parse_args(argv)

    from mlops_provider.hooks.local_serving import LocalServingHook, feast_config_for_serving, mlflow_env
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.settings import get_settings

    settings = get_settings()
    from include.fraud_example import MODEL_NAME

    model_name = args.model_name or settings.model_name or MODEL_NAME
    mlflow = MlflowHook()
    version = mlflow.get_version_by_alias(model_name, args.alias)
    if version is None:
        print(
            f"No version of {model_name} has the alias {args.alias!r} in {mlflow.tracking_uri}; "
            "run `make demo` (or the training pipeline) first.",
            file=sys.stderr,
        )
        return 2
    storage_uri = mlflow.version_download_uri(model_name, version.version)
    # The transformer looks features up through the FeatureService the version was trained on (its lineage tag).
    feature_service = mlflow.feature_service_of_version(version)
    feast_config = None if args.no_transformer or not feature_service else feast_config_for_serving(None)
    local = LocalServingHook(settings=settings)
    # From here on every exit path stops what was started: Ctrl-C or SIGTERM while a server is still starting
    # raises KeyboardInterrupt, and the ``finally`` stops the proxy and every model server (pid files included).
    # Explicit handlers: a shell starting us in the background makes Python ignore SIGINT otherwise.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        local.ensure_proxy()
        live = local.active()
        if live and live["model_name"] == model_name and live["model_version"] == str(version.version):
            slot = live
        else:
            slot = local.start_slot(
                model_name,
                storage_uri,
                str(version.version),
                feast_config=feast_config,
                feature_service=feature_service,
                env=mlflow_env(storage_uri),
            )
            local.switch(slot)
        components = "transformer + predictor" if slot.get("transformer") else "predictor"
        print(f"serving   {model_name} version {version.version} ({args.alias}) — {components}")
        print(f"port      {settings.local_serving_port}")
        print(
            f"endpoint  {local.endpoint_url}/v2/models/{model_name}/infer  "
            f"(health: {local.endpoint_url}/v2/health/ready)"
        )
        print("Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(1.0)
            if local.slot_status(slot) == "down":  # asleep (scaled to zero) is not down: a request wakes it
                print("The model server exited; see the logs under", local.root / "logs", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        local.stop_all()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
