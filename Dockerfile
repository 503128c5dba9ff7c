# The SRE Agent image. BASE_IMAGE must provide python3 (>= 3.11) with venv and pip; no registry
# is needed when it points at a local image (scripts/build-local-images.sh builds
# sre-agent/python-base:bookworm from Debian packages).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SRE_AGENT_HOST=0.0.0.0 SRE_AGENT_PORT=8001 \
    SRE_AGENT_DATABASE_URL=sqlite:////var/lib/sre-agent/sre-agent.db

WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
COPY src ./src
# wheelhouse/ may hold wheels (`pip wheel --wheel-dir wheelhouse .`): then the build
# installs offline from it; otherwise from PyPI.
COPY wheelhouse /wheels
RUN python3 -m venv /opt/venv \
 && if ls /wheels/*.whl >/dev/null 2>&1; then \
      /opt/venv/bin/pip install --no-cache-dir --quiet --no-index --find-links /wheels sre-agent ; \
    else \
      /opt/venv/bin/pip install --no-cache-dir --quiet . ; \
    fi \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /var/lib/sre-agent --create-home agent

USER agent
VOLUME ["/var/lib/sre-agent"]
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/opt/venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8001/health', timeout=2)"]
CMD ["/opt/venv/bin/sre-agent", "serve"]
