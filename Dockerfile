# lsray image: Ray head/worker pods of the KubeRay manifests in k8s/, the RayJob entrypoints (jobs/) and Serve.
# No model weights inside: pods sync their bundle from S3 into a cache volume at start (`lsray fetch-bundle`).
#   docker build -t lsray:0.1.0 .          (then push and set the overlay's images: newName/newTag)
FROM python:3.11-slim

# wget: KubeRay's readiness/liveness probes call it; tini: PID 1 that reaps Ray's children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget tini \
    && rm -rf /var/lib/apt/lists/*

ARG LSRAY_TORCH_VERSION=2.13.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    LSRAY_BUNDLE_CACHE=/models/cache

RUN groupadd --gid 1000 lsray && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash lsray

WORKDIR /app
# Dependencies first (cached layer): same order as scripts/setup.sh (torch pinned first, then lsray from pyproject).
COPY pyproject.toml README.md ./
COPY lsray ./lsray
RUN python -m venv /opt/venv \
    && pip install --upgrade "pip>=24" \
    && pip install "torch==${LSRAY_TORCH_VERSION}" \
    && pip install "/app[voice]"
COPY jobs ./jobs
COPY deployments ./deployments

RUN mkdir -p /models /srv/lsray/work && chown -R lsray:lsray /models /srv/lsray /app
USER 1000:1000

# Serve HTTP, Ray dashboard / Job API, GCS, Ray client, Ray metrics agent
EXPOSE 8000 8265 6379 10001 8080
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["lsray", "doctor"]
