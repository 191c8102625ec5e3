# jobq's image: `make image` builds it (docs/DEPLOY.md).
#
# The wheels come from the host: `make image` builds jobq and its locked
# runtime dependencies into build/image/ (deploy/scripts/image_context.py) and
# this file installs them with `pip install --no-index --require-hashes`, so
# the build needs no network. BASE_IMAGE must carry CPython 3.11, the
# version the wheels were built for, with the venv module: the official slim
# image, or Debian bookworm's python3 + python3-venv
# (deploy/scripts/base-image.sh makes one where no registry can be reached).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- build: a venv with jobq, made from the wheels only ----------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /tmp/image
COPY build/image/ ./
RUN python3 -m venv /opt/jobq \
 && /opt/jobq/bin/pip install --no-cache-dir --no-index --disable-pip-version-check \
      --require-hashes --no-deps --find-links ./wheels -r requirements.txt \
 && /opt/jobq/bin/pip uninstall --yes --quiet pip setuptools \
 && /opt/jobq/bin/jobq --help >/dev/null

# --- runtime: the base plus the venv, run by a user that is not root ---------
FROM ${BASE_IMAGE}
RUN groupadd --system --gid 10001 jobq \
 && useradd --system --uid 10001 --gid jobq --home-dir /home/jobq --create-home \
      --shell /usr/sbin/nologin jobq
COPY --from=build /opt/jobq /opt/jobq
ENV PATH=/opt/jobq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JOBQ_HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /home/jobq
EXPOSE 8000
# /healthz of `jobq serve`; a worker started with `--metrics-port P` serves it
# on P: set JOBQ_HEALTHCHECK_URL=http://127.0.0.1:P/healthz for it.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['JOBQ_HEALTHCHECK_URL'], timeout=2)"]
ENTRYPOINT ["jobq"]
# The API, the dashboard and workers in one process. Beyond loopback it
# needs JOBQ_API_TOKENS (or --allow-unauthenticated), and DATABASE_URL: the
# image has no embedded database.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
