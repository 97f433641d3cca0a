# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target runtime -t paretomerge:runtime .   operator, controller, merge, profile
#   docker build --target eval -t paretomerge:eval .         vLLM plus this package's eval extra

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- runtime: build a virtual environment, then copy it into a clean slim image ---------
FROM ${PYTHON_IMAGE} AS runtime-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/paretomerge
ENV PATH=/opt/paretomerge/bin:$PATH
# torch first, the CPU build: pyproject.toml leaves torch unpinned, and the default index
# would bring gigabytes of CUDA libraries that no runtime container uses.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runtime runtime
COPY operator operator
# The package itself: its dependencies are ranges, as in tools/install.sh.
# hadolint ignore=DL3013
RUN pip install '.[operator]'

FROM ${PYTHON_IMAGE} AS runtime
COPY --from=runtime-build /opt/paretomerge /opt/paretomerge
# Pods run with a read-only root filesystem and /tmp as their only writable directory.
ENV PATH=/opt/paretomerge/bin:$PATH \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp \
    PYTHONUNBUFFERED=1
USER 1000:1000
CMD ["paretomerge-operator"]

# --- eval: the official vLLM image, its environment left exactly as it is --------------
# vLLM pins its own torch and transformers. Every package the image already holds is
# frozen as a constraint, so installing this package adds what it lacks (evalscope,
# botorch, mergekit, ...) and never replaces vLLM's own: if a requirement of ours ever
# conflicts with vLLM's pins the build fails here instead of shipping a broken vLLM.
FROM vllm/vllm-openai:v0.33.0 AS eval
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY runtime runtime
COPY operator operator
RUN python3 -m pip list --format=freeze > /tmp/vllm-constraints.txt \
    && python3 -m pip install --constraint /tmp/vllm-constraints.txt '.[eval]' \
    && rm -rf /tmp/src /tmp/vllm-constraints.txt
WORKDIR /
ENV HOME=/tmp \
    MPLCONFIGDIR=/tmp \
    PYTHONUNBUFFERED=1
USER 1000:1000
# Candidate Jobs set the command (`paretomerge task ...`); the image's `vllm serve`
# entrypoint is cleared so that a plain `docker run` gives the CLI.
ENTRYPOINT []
CMD ["paretomerge", "--help"]
