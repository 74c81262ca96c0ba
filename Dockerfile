# The image-completion service (`python -m app serve`: one uvicorn process per GPU) on torch's CUDA build.
#
#   GPU host:  docker build -t imgcomp .                     (or: docker compose build)
#   no registry, CPU only (scripts/compose-smoke.sh does this):
#              docker build --build-arg BASE_IMAGE=local/bookworm:base --build-arg WHEELS_ONLY=1 -t imgcomp .
#              with the CPU torch wheel and the project's dependencies downloaded into wheels/ first.

# torch's CUDA wheels bring their own CUDA runtime, cuBLAS and cuDNN as pip packages, so the base only
# has to be what the NVIDIA container toolkit expects: the -runtime/-cudnn variants would add ~2 GB of
# duplicate libraries. CUDA 13 because torch 2.13's default wheel is built for it (cu13 packages).
# Any Debian/Ubuntu image with Python >= 3.11 in apt works here.
ARG BASE_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04

FROM ${BASE_IMAGE} AS deps
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# WHEELS_ONLY=1: pip installs from wheels/ in the context and never asks an index (a machine without
# one downloads every wheel there first). Otherwise wheels/ is ignored even if present, so a CPU wheel
# left there cannot slip into a CUDA image; the glob lets the build run without the folder (see
# deploy/wheels.txt). The pip config is in this stage's /etc only: the final image has neither.
COPY deploy/wheels.txt wheel[s] /wheels/
ARG WHEELS_ONLY=0
RUN if [ "$WHEELS_ONLY" = 1 ]; then printf '[global]\nno-index = true\nfind-links = /wheels\n' > /etc/pip.conf; fi

# torch first, from its own spec, in its own layer: a bare `torch` dependency would let pip choose the
# build, and this ~GB layer stays cached while the code changes. TORCH_INDEX_URL may name another
# wheel index (e.g. PyTorch's CPU-only one, for a small CPU image); empty means pip's default.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=
# DL3013 cannot see through the variable: TORCH_SPEC is the pin.
# hadolint ignore=DL3013
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"

# The other dependencies depend only on pyproject.toml, so a code edit reinstalls none of them.
WORKDIR /src
# README.m[d]: the wheel's long description when there is one; its absence must not stop a build.
COPY pyproject.toml README.m[d] ./
RUN python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt


FROM deps AS wheel
COPY app app
COPY training training
RUN pip wheel --no-deps --wheel-dir /dist .


FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
# Same base, same python3 as the build stages, so the copied venv's interpreter link resolves.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/imgcomp imgcomp
# Dependencies (~1 GB, changes with pyproject.toml) and the project (~100 kB, changes with every
# commit) are separate layers, so a code change ships a small layer, not the whole venv again.
COPY --from=deps /opt/venv /opt/venv
COPY --from=wheel /dist /tmp/dist
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The project goes in as a wheel like any other dependency: no source tree at run time.
RUN pip install --no-deps --no-index /tmp/dist/*.whl \
 && rm -rf /tmp/dist \
 && pip check

WORKDIR /srv
# The shipped checkpoints, read-only for the service user; mount your own store over this folder
# (docker-compose.yml does) or point IMGCOMP_MODEL_STORE elsewhere.
COPY model_store /srv/model_store

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IMGCOMP_HOST=0.0.0.0 \
    IMGCOMP_PORT=8000 \
    IMGCOMP_MODEL_STORE=/srv/model_store

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000 9464
# Liveness only (the process answers); readiness (models loaded, workers up) is /readyz, which
# docker-compose.yml's healthcheck uses. No curl in the image: Python is there already.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('IMGCOMP_PORT', '8000'), timeout=4)"]
# One process per visible GPU (a supervisor forks them onto one port and sums their metrics; one device is
# one plain process): scale with replicas, not uvicorn workers (each would load every model onto every GPU).
CMD ["python", "-m", "app", "serve"]
