# syntax=docker/dockerfile:1
# Nanny's production image. Build: docker build -t nanny . — run: see docker-compose.yml.

# Stage 1: wheels for Nanny and every dependency. Only this stage may need a compiler
# (every current dependency ships a manylinux wheel, so none is installed), and it is discarded.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY nanny/ nanny/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Stage 2: the runtime. The wheels are bind-mounted from stage 1 for the install only, so neither
# they nor a pip cache end up in a layer.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NANNY_ENV=production \
    NANNY_ROOT=/app \
    NANNY_DATA_DIR=/var/lib/nanny
RUN groupadd --system --gid 10001 nanny \
    && useradd --system --uid 10001 --gid nanny --home-dir /var/lib/nanny --shell /usr/sbin/nologin nanny \
    && mkdir -p /var/lib/nanny/media \
    && chown -R nanny:nanny /var/lib/nanny
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/nanny-*.whl
# The wheel holds the package; migrations, templates, static files and the translation catalogs
# sit in NANNY_ROOT, where nanny.PROJECT_ROOT finds them. Owned by root: the server cannot
# rewrite its own code.
WORKDIR /app
COPY migrations/ migrations/
COPY templates/ templates/
COPY static/ static/
COPY locale/ locale/
USER 10001:10001
EXPOSE 8080
# slim has no curl; Python's urllib raises (exit 1) on a refused connection or a 503.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/health', timeout=3)"]
# Exec form: nanny is PID 1 and receives SIGTERM itself, for a graceful shutdown.
ENTRYPOINT ["nanny"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
