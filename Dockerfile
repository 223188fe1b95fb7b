# flusso-obs collector + viewer. Build: docker build -t flusso-obs .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLUSSO_HOST=0.0.0.0 \
    FLUSSO_PORT=8000 \
    FLUSSO_DATA_DIR=/var/lib/flusso

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so source edits reuse this layer.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + [d for d in p['optional-dependencies']['server'] if not d.startswith('pixeltable')]))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY config ./config
COPY otel_bridge ./otel_bridge
COPY collector_api ./collector_api
COPY viewer ./viewer
COPY flusso_obs ./flusso_obs
COPY examples ./examples
RUN pip install --no-cache-dir --no-deps . \
    && groupadd --system --gid 10001 flusso \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/flusso --create-home flusso

USER 10001:10001
EXPOSE 8000 4317

# Migrates, creates the FLUSSO_BOOTSTRAP_* accounts, then serves collector + viewer.
CMD ["flusso-obs", "serve"]
