# syntax=docker/dockerfile:1
# The deer_pipeline image: the code location's gRPC server, and the run workers that the Docker
# and Kubernetes run launchers start from it (the same image also serves the Dagster webserver and
# daemon in deploy/compose). Dependencies are the pins of pyproject.toml plus the `deploy` extra.
#
#   docker build -t deer-pipeline:0.1.0 .                          # no model weights inside
#   docker build --build-arg WEIGHTS=bundled -t deer-pipeline:0.1.0-weights .   # bake ./models in
#
# Without weights the models come from a mounted folder: set DEER_DETECTOR_WEIGHTS and
# DEER_REID_WEIGHTS to paths in it (deploy/compose does). PyTorch's wheels carry their own CUDA
# libraries; the CUDA base image only needs a host driver recent enough for them.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
ARG WEIGHTS=none

FROM ${CUDA_IMAGE} AS base
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# libgl1 and libglib2.0-0: OpenCV (pulled in by ultralytics) loads them at import time
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates tini libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

FROM base AS weights-none
RUN mkdir -p /models

FROM base AS weights-bundled
COPY models/ /models/

FROM weights-${WEIGHTS} AS weights

FROM base AS app
WORKDIR /opt/deer_pipeline
# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir deer_pipeline && touch deer_pipeline/__init__.py \
 && pip install ".[deploy]" \
 && pip uninstall -y deer_pipeline \
 && rm -rf deer_pipeline build ./*.egg-info
# The project itself, installed in place: config.PROJECT_ROOT (sql/ migrations, models/ defaults,
# dagster.yaml) is this folder.
COPY deer_pipeline/ deer_pipeline/
COPY sql/ sql/
COPY dagster.yaml workspace.yaml ./
RUN pip install --no-deps -e . \
 && mkdir -p models
COPY --from=weights /models/ models/
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin deer \
 && mkdir -p /opt/dagster/home /opt/dagster/compute_logs /var/lib/deer /data/images \
 && chown -R deer:deer /opt/dagster /var/lib/deer
USER deer
ENV DAGSTER_HOME=/opt/dagster/home \
    DEER_HOME=/var/lib/deer \
    DEER_IMAGE_ROOT=/data/images
EXPOSE 4000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "4000", \
     "--module-name", "deer_pipeline.definitions"]
