# syntax=docker/dockerfile:1
# model-cache: the admission webhook and the downloader, one image.
#   docker build -t ghcr.io/model-cache/model-cache:0.1.0 .
# The same image is the downloader init container: the Deployment passes it
# to the webhook as MODEL_CACHE_DOWNLOADER_IMAGE. Released for linux/amd64
# and linux/arm64 by .github/workflows/release.yml on a tag.

# The base, pinned by digest so that a rebuild starts from the same bytes
# (the tag beside it says what it is; refresh both together:
#   docker buildx imagetools inspect python:3.12-slim-bookworm --format '{{json .Manifest.Digest}}').
# Any Debian-based image with python (and python -m venv, useradd) and libstdc++
# (grpcio's extension, for hostpath through Dragonfly; every python:*-slim has it). tests/node
# builds this Dockerfile with a base made by mmdebstrap (Debian 12, Python
# 3.11.2, the oldest Python the project claims): scripts/node-images.
ARG BASE_IMAGE=python:3.12-slim-bookworm@sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254

# --- build: the locked dependencies, then the package, in a virtualenv ------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/model-cache
WORKDIR /src
# Dependencies first, so that a code change does not reinstall them: exactly
# the versions and files of requirements.lock (scripts/lock), nothing newer.
COPY requirements.lock ./
RUN /opt/model-cache/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY webhook ./webhook
# --no-deps: the lock is the whole set; pip check proves it is complete.
RUN /opt/model-cache/bin/pip install --no-deps . \
 && /opt/model-cache/bin/pip check \
 && rm -rf build *.egg-info

# --- run: no compiler, no pip cache, not root --------------------------------
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="model-cache" \
      org.opencontainers.image.description="Kubernetes admission webhook for a shared, pre-downloaded, read-only model cache" \
      org.opencontainers.image.source="https://github.com/model-cache/model-cache" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A numeric user, so that the kubelet can check runAsNonRoot without
# reading /etc/passwd; the same uid as the Deployment's runAsUser.
RUN groupadd --system --gid 10001 model-cache \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/model-cache --create-home \
      --shell /usr/sbin/nologin model-cache
COPY --from=build /opt/model-cache /opt/model-cache
COPY policies /usr/share/model-cache/policies
COPY LICENSE /usr/share/doc/model-cache/LICENSE
ENV PATH=/opt/model-cache/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/model-cache
USER 10001:10001
WORKDIR /home/model-cache
# The image as it ships, as the user it runs as: the webhook's and the
# downloader's entry points both start.
RUN model-cache --version && model-cache download --help >/dev/null
EXPOSE 8443
ENTRYPOINT ["model-cache"]
# The Deployment passes its own args; this default serves the example
# policies shipped in the image (certificates must be mounted at certs/).
CMD ["serve", "--policies", "/usr/share/model-cache/policies"]
