# syntax=docker/dockerfile:1.7
# Trainer image of the bundle: python -m include.trainer on CUDA (XGBoost hist, device="cuda" when a GPU
# is visible, CPU otherwise). Used by the kubernetes and vertex training backends ([mlops] trainer_image):
#   docker build -f docker/trainer.Dockerfile --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#       -t ghcr.io/example/mlops-trainer:0.1.0 .
# The params file is baked in (include/trainer/params.yaml); the operator passes its SHA-256 and the trainer
# refuses to run with a different file, so the image and the DAG bundle cannot drift apart silently.

ARG CUDA_IMAGE=nvidia/cuda:12.9.1-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_INSTALL_DIR=/opt/python UV_PYTHON_PREFERENCE=only-managed
RUN uv python install 3.11 && uv venv /opt/venv --python 3.11
COPY docker/trainer-requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/uv VIRTUAL_ENV=/opt/venv uv pip install -r /tmp/requirements.txt
# The provider's pure-Python training helpers (metrics, splits, registry tags); --no-deps keeps Airflow out.
COPY providers/mlops /tmp/providers/mlops
RUN --mount=type=cache,target=/root/.cache/uv VIRTUAL_ENV=/opt/venv uv pip install --no-deps /tmp/providers/mlops

FROM ${CUDA_IMAGE} AS runtime
ARG GIT_COMMIT=unknown
# XGBoost links OpenMP at run time; tini reaps children and forwards SIGTERM on pod deletion.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 trainer && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin trainer
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root include/__init__.py /app/include/__init__.py
COPY --chown=root:root include/trainer /app/include/trainer
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    MPLBACKEND=Agg \
    MLOPS_GIT_COMMIT=${GIT_COMMIT} \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
# Matches the pod's securityContext (runAsUser/runAsGroup 10001, read-only root; /tmp is an emptyDir).
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m", "include.trainer"]
