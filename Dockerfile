# One image for the three apps: APP=event (default), APP=job or APP=lifecycle. Serves uvicorn on $PORT.
#   docker build -t newstore-connector .
#   docker run -e APP=event -e PORT=8080 --env-file .env -p 8080:8080 newstore-connector
# Deploying it on Google Cloud Run: docs/deploy.md.

# --- build: the pinned runtime dependencies, then the project, into a virtualenv -----------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# The dependency layer is built from the lock alone, before any code is copied, so a code
# change reuses it; --require-hashes installs exactly the pinned files.
COPY requirements/runtime.txt ./requirements/runtime.txt
RUN /opt/venv/bin/pip install --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY event ./event
COPY job ./job
COPY lifecycle ./lifecycle
COPY cli ./cli
RUN /opt/venv/bin/pip install --no-deps .

# --- run: the virtualenv only, as an unprivileged user ---------------------------------------
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    APP=event \
    PORT=8080
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin connector
COPY --from=build /opt/venv /opt/venv
# An empty, root-owned directory: the installed package is what runs, no .env is picked up.
WORKDIR /app
USER 10001
EXPOSE 8080
CMD ["python", "-m", "cli.serve"]
