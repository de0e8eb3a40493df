# One image for every Persona Stream process: `docker run <image> <subcommand>` runs
# `persona <subcommand>` (stream, monitor, trainer, serve, topics create, db migrate, ...).
# The MLflow server runs from the same image (`--entrypoint mlflow`): it already has full
# mlflow and psycopg 3, which the backend store on PostgreSQL needs.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 persona \
 && mkdir -p /data /mlflow/artifacts \
 && chown -R persona:persona /data /mlflow

WORKDIR /src
# Dependencies first (exact versions CI tested), so code changes do not reinstall them.
COPY constraints.txt pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --constraint constraints.txt --requirement /tmp/requirements.txt
COPY persona_cli ./persona_cli
COPY personas ./personas
COPY producer ./producer
COPY stream_app ./stream_app
COPY monitor ./monitor
COPY trainer ./trainer
COPY serving ./serving
COPY infra ./infra
RUN pip install --constraint constraints.txt --no-deps . \
 && persona --help > /dev/null

USER persona
# Relative paths in the settings (.cache/, reports/) land in /data: mount a volume there.
WORKDIR /data
ENTRYPOINT ["persona"]
CMD ["--help"]
