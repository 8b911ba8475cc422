# syntax=docker/dockerfile:1
# thumbsvc container image.
#   docker build -t thumbsvc .
#   docker run -e THUMBSVC_KEY=... -v /srv/media:/srv/media:ro -e THUMBSVC_MEDIA_ROOT=/srv/media -p 8080:8080 thumbsvc
# Private buckets (docs/sources.md): no key is ever baked into the image. Credentials reach the process from
# the AWS credential chain at run time: an env file kept out of the image (--env-file thumbsvc.env holding
# AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), a Kubernetes Secret, or a role (web identity, ECS task role,
# instance profile) with no key at all:
#   docker run --env-file thumbsvc.env -e THUMBSVC_ALLOWED_SOURCES=s3://media-bucket/media/ -p 8080:8080 thumbsvc
# tests/deploy/test_dockerfile.py runs this file's install command, start command and health check.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV VIRTUAL_ENV=/opt/thumbsvc \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv "$VIRTUAL_ENV"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY thumbsvc ./thumbsvc
# A plain (non-editable) install: the package, its bundled samples and the `thumbsvc` script, with the s3
# extra (obstore) for s3:// sources. Pillow's, blake3's and obstore's wheels carry their own native libraries, so the
# image needs no system libraries.
RUN "$VIRTUAL_ENV/bin/pip" install ".[s3]"

FROM ${PYTHON_IMAGE} AS runtime
ENV VIRTUAL_ENV=/opt/thumbsvc \
    PATH=/opt/thumbsvc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    THUMBSVC_HOST=0.0.0.0 \
    THUMBSVC_PORT=8080 \
    THUMBSVC_WORKERS=1 \
    THUMBSVC_LIMIT_MAX_REQUESTS=0
# One process, one render thread per core (THUMBSVC_RENDER_SLOTS). Worker recycling
# (THUMBSVC_LIMIT_MAX_REQUESTS=N) is off: over many renders of 6-24 MP photos the resident set levels off
# (docs/operations.md, "Sizing memory"). With THUMBSVC_WORKERS=1 a recycled process exits and only the
# container's restart policy brings it back; with several workers uvicorn restarts each one in place.
RUN groupadd --system --gid 10001 thumbsvc \
    && useradd --system --uid 10001 --gid thumbsvc --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin thumbsvc
COPY --from=build /opt/thumbsvc /opt/thumbsvc
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('THUMBSVC_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["thumbsvc"]
CMD ["serve"]
