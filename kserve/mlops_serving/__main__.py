"""Entry point: ``python -m mlops_serving --component predictor|transformer|fused [kserve model server args]``.

``predictor`` serves feature rows; ``transformer`` takes entity requests, looks the features up in Feast's online
store and calls the predictor at ``--predictor_host``; ``fused`` does both in one process (the predictor looks the
features up itself: no second server, no network hop).

The argument parser extends ``kserve.model_server.parser``, so every KServe server flag (``--http_port``,
``--grpc_port``, ``--workers``, ``--enable_grpc``, ``--predictor_host``, ``--predictor_protocol``...) works as in
KServe's own servers; KServe's controller appends ``--model_name``/``--predictor_host``/``--http_port`` itself.

``--bind_host`` (or ``MLOPS_SERVING_BIND_HOST``) sets the address the REST and gRPC servers listen on. KServe
listens on every interface, which a pod needs; the local serving backend passes ``127.0.0.1`` so a model server
on a workstation or Airflow worker is never reachable from the network.
"""

from __future__ import annotations

import argparse
import logging
import os

from kserve.model import Model
from kserve.model_server import ModelServer
from kserve.predictor_config import PredictorConfig
from kserve.utils import utils

from kserve import model_server

logger = logging.getLogger("mlops_serving")


class DefaultJsonContentType:
    """ASGI middleware: treat a V2 infer body without any ``Content-Type`` as JSON.

    ``tritonclient.http`` sends JSON tensors (``binary_data=False``) without a content type; KServe would take the
    body for binary tensor data and answer 400 for the missing ``Inference-Header-Content-Length``.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = scope["headers"]
            names = {name for name, _ in headers}
            if b"content-type" not in names and b"inference-header-content-length" not in names:
                scope = dict(scope, headers=[*headers, (b"content-type", b"application/json")])
        await self.app(scope, receive, send)


def configure_logging(log_config_file: str | None) -> None:
    """KServe's logging (before the model loads, so its lines are formatted too), with this package's loggers
    writing through KServe's handler unless the configuration names them itself."""
    from kserve.logging import KSERVE_LOGGER_NAME
    from kserve.logging import configure_logging as configure_kserve_logging

    configure_kserve_logging(log_config_file)
    ours = logging.getLogger("mlops_serving")
    if not ours.handlers:
        ours.handlers = list(logging.getLogger(KSERVE_LOGGER_NAME).handlers)
        ours.setLevel(logging.INFO)
        ours.propagate = False


def use_event_loop(choice: str) -> str:
    """Install uvloop as the event loop policy unless ``choice`` is ``asyncio``; return the loop used.

    KServe's ``--event_loop`` reaches uvicorn only with ``--workers`` above 1: one worker runs in KServe's own
    ``asyncio.run``, on the default loop whatever the flag says. uvloop spends about a tenth less CPU per request.
    """
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("--event_loop=uvloop needs the uvloop package in the serving environment.") from None
        return "asyncio"
    import asyncio

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())  # KServe asks for the thread's loop before its asyncio.run
    return "uvloop"


def without_timing_middleware() -> None:
    """Make KServe's REST server leave out its request-timing middleware.

    KServe installs it whatever ``--enable_latency_logging`` says; it measures CPU time twice a request with
    ``getrusage`` and formats a log line only to write the latency log that flag turns off: about a tenth of a
    one-row request's CPU.
    """
    from kserve.protocol.rest import server as rest_server
    from timing_asgi import TimingMiddleware

    add_middlewares = rest_server.RESTServer._add_middlewares

    def add_middlewares_without_timing(self, app) -> None:
        add_middlewares(self, app)
        app.user_middleware[:] = [m for m in app.user_middleware if m.cls is not TimingMiddleware]

    rest_server.RESTServer._add_middlewares = add_middlewares_without_timing  # type: ignore[method-assign]


def bind_servers_to(host: str) -> None:
    """Make KServe's REST (uvicorn) and gRPC servers listen on ``host`` instead of every interface."""
    from grpc import aio
    from kserve.protocol.grpc import server as grpc_server
    from kserve.protocol.rest import server as rest_server

    rest_init = rest_server.RESTServer.__init__

    def init(self, *args, **kwargs) -> None:
        rest_init(self, *args, **kwargs)
        self.config.host = host  # the uvicorn server (and the multi-process one) bind from this config

    rest_server.RESTServer.__init__ = init  # type: ignore[method-assign]
    grpc_host = f"[{host}]" if ":" in host else host

    class _Aio:
        """``grpc.aio`` as the gRPC server module sees it, with ``add_insecure_port`` bound to ``host``."""

        def __getattr__(self, name: str):
            return getattr(aio, name)

        @staticmethod
        def server(*args, **kwargs):
            server = aio.server(*args, **kwargs)
            add_port = server.add_insecure_port

            def add_insecure_port(address: str) -> int:
                return add_port(f"{grpc_host}:{address.rsplit(':', 1)[1]}")

            server.add_insecure_port = add_insecure_port
            return server

    grpc_server.aio = _Aio()


def build_parser() -> argparse.ArgumentParser:
    """Return the server's argument parser (KServe's flags plus the bundle's)."""
    parser = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__)
    parser.add_argument(
        "--component",
        choices=["predictor", "transformer", "fused"],
        default="predictor",
        help="What to serve: feature rows (predictor), entity requests forwarded to --predictor_host "
        "(transformer), or entity requests scored in process (fused).",
    )
    parser.add_argument(
        "--storage_uri",
        default=os.environ.get("STORAGE_URI"),
        help="Model location: a folder (KServe's storage initializer mounts /mnt/models), file://, s3://, gs:// or "
        "models:/<name>@<alias>. The transformer reads the model's feature order from it.",
    )
    parser.add_argument(
        "--bind_host",
        default=os.environ.get("MLOPS_SERVING_BIND_HOST") or None,
        help="Address the REST and gRPC servers listen on (default: every interface, as KServe; the local "
        "serving backend passes 127.0.0.1).",
    )
    parser.add_argument("--model_dir", default=None, help="Alias of --storage_uri for a local folder.")
    parser.add_argument("--model_version", default=None, help="Version reported in responses and the prediction log.")
    parser.add_argument(
        "--access_log",
        default=True,
        type=lambda x: utils.strtobool(x),
        help="Log one uvicorn access line per request (off on latency-critical local endpoints).",
    )
    parser.add_argument("--max_batch_size", type=int, default=1000, help="Largest number of rows per request.")
    parser.add_argument("--nthread", type=int, default=1, help="XGBoost threads per prediction.")
    parser.add_argument("--mlflow_tracking_uri", default=None, help="MLflow tracking URI for models:/ storage URIs.")
    parser.add_argument(
        "--prediction_log_uri",
        default=None,
        help="Folder for the served-request log (<data_root>/predictions/<model>); empty disables it.",
    )
    parser.add_argument("--prediction_log_flush_rows", type=int, default=1000)
    parser.add_argument("--prediction_log_flush_seconds", type=float, default=10.0)
    parser.add_argument(
        "--feast_repo_path", default=os.environ.get("FEAST_REPO_PATH"), help="Feast feature repository."
    )
    parser.add_argument(
        "--feast_config",
        default=os.environ.get("FEAST_FS_YAML_FILE"),
        help="A resolved feature_store.yaml to use instead of the repository's own (e.g. FeastHook's output).",
    )
    parser.add_argument(
        "--feature_service",
        default=os.environ.get("FEAST_FEATURE_SERVICE"),
        help="Feast FeatureService with the model's features (the one its training set was built from); "
        "required for the transformer and fused mode.",
    )
    parser.add_argument(
        "--unknown_entities",
        choices=["reject", "missing"],
        default="reject",
        help="Entities the online store has never seen: answer 400 (reject) or score them with missing features.",
    )
    parser.add_argument(
        "--feature_names",
        default=None,
        help="Comma-separated feature order; default: read from the model at --storage_uri.",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, load the component and run the KServe model server until SIGTERM/SIGINT."""
    args, _ = build_parser().parse_known_args(argv)
    if args.configure_logging:
        configure_logging(args.log_config_file)
    storage_uri = args.storage_uri or args.model_dir
    predictor_options = {
        "model_version": args.model_version,
        "max_batch_size": args.max_batch_size,
        "nthread": args.nthread,
        "prediction_log_uri": args.prediction_log_uri or None,
        "prediction_log_flush_rows": args.prediction_log_flush_rows,
        "prediction_log_flush_seconds": args.prediction_log_flush_seconds,
        "tracking_uri": args.mlflow_tracking_uri,
    }
    if args.component != "predictor":
        if not args.feast_repo_path:
            raise SystemExit(f"--feast_repo_path (or FEAST_REPO_PATH) is required for the {args.component}.")
        if not args.feature_service:
            raise SystemExit(f"--feature_service (or FEAST_FEATURE_SERVICE) is required for the {args.component}.")
    if args.component in ("predictor", "fused") and not storage_uri:
        raise SystemExit(
            f"--storage_uri (or --model_dir, or the STORAGE_URI variable) is required for the {args.component}."
        )
    model: Model
    if args.component == "predictor":
        from mlops_serving.predictor import XGBoostPredictor

        model = XGBoostPredictor(args.model_name, storage_uri, **predictor_options)
    elif args.component == "fused":
        from mlops_serving.fused import FusedPredictor

        model = FusedPredictor(
            args.model_name,
            storage_uri,
            feast_repo_path=args.feast_repo_path,
            feast_config=args.feast_config,
            feature_service=args.feature_service,
            reject_unknown_entities=args.unknown_entities == "reject",
            **predictor_options,
        )
    else:
        from mlops_serving.transformer import FeastTransformer

        if not args.predictor_host:
            raise SystemExit("--predictor_host is required for the transformer.")
        model = FeastTransformer(
            args.model_name,
            feast_repo_path=args.feast_repo_path,
            feast_config=args.feast_config,
            feature_service=args.feature_service,
            storage_uri=storage_uri,
            feature_names=args.feature_names.split(",") if args.feature_names else None,
            max_batch_size=args.max_batch_size,
            tracking_uri=args.mlflow_tracking_uri,
            reject_unknown_entities=args.unknown_entities == "reject",
        )
    if args.bind_host:
        bind_servers_to(args.bind_host)
    model.load()
    # The transformer always forwards the V2 feature tensor; only the transport (REST or gRPC) is configurable.
    protocol = "grpc-v2" if args.predictor_protocol == "grpc-v2" or args.protocol == "grpc-v2" else "v2"
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        predictor_config=PredictorConfig(
            predictor_host=args.predictor_host,
            predictor_protocol=protocol,
            predictor_use_ssl=args.predictor_use_ssl,
            predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
            predictor_request_retries=args.predictor_request_retries,
            predictor_health_check=args.enable_predictor_health_check,
        ),
    )
    if not args.access_log:
        logging.getLogger("uvicorn.access").disabled = True
    if not args.enable_latency_logging:
        without_timing_middleware()
    model_server.app.add_middleware(DefaultJsonContentType)
    logger.info("Serving on the %s event loop", use_event_loop(args.event_loop))
    server.start([model])


if __name__ == "__main__":
    main()
