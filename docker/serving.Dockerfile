# syntax=docker/dockerfile:1.7
# Model server image of the bundle: the KServe predictor and the Feast transformer (kserve/mlops_serving).
#   docker build -f docker/serving.Dockerfile -t ghcr.io/example/mlops-serving:0.1.0 .
# Used by the ServingRuntime "mlops-xgboost" (predictor) and the InferenceService's transformer container;
# KServe passes --model_name/--predictor_host/--http_port, the manifests pass the rest (see `make render`).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN uv venv /opt/venv --python /usr/local/bin/python3.11
COPY kserve/requirements.lock /tmp/requirements.lock
# The pinned lock is the whole dependency set: the image matches the environment the tests ran in.
RUN --mount=type=cache,target=/root/.cache/uv VIRTUAL_ENV=/opt/venv uv pip sync /tmp/requirements.lock

FROM ${PYTHON_IMAGE} AS runtime
# XGBoost's wheels link OpenMP at run time.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin kserve
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root kserve/mlops_serving /app/mlops_serving
# The feature repository, for reference; the transformer reads the resolved feature_store.yaml mounted from the
# feast-config ConfigMap (--feast_config), with credentials from the feast-online-store Secret's environment.
COPY --chown=root:root include/feature_repo /app/include/feature_repo
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/kserve
WORKDIR /app
USER 1000:1000
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=2)"]
ENTRYPOINT ["python", "-m", "mlops_serving"]
CMD ["--component=predictor", "--storage_uri=/mnt/models", "--http_port=8080"]
