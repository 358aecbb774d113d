# Production image: web (gunicorn with uvicorn workers, ASGI), Celery worker and beat, and the cluster watcher all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    CODERADMIN_VAR_DIR=/app/var

RUN groupadd --system --gid 10001 coderadmin \
 && useradd --system --uid 10001 --gid coderadmin --home-dir /app --no-create-home coderadmin

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml requirements.lock README.md ./
COPY coderadmin ./coderadmin
COPY environments ./environments
COPY infrastructure ./infrastructure
RUN pip install -c requirements.lock .

COPY manage.py ./
COPY templates ./templates
COPY static ./static

# Collect static files at build time with throwaway settings (nothing here reaches the runtime).
RUN SECRET_KEY=collectstatic-only DEBUG=false ALLOW_SIMULATED_CLUSTER=true CODERADMIN_VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput \
 && rm -rf /tmp/build-var \
 && mkdir -p /app/var \
 && chown coderadmin:coderadmin /app/var

USER coderadmin
EXPOSE 8000

# WEB_CONCURRENCY: gunicorn worker processes; GUNICORN_TIMEOUT: seconds before a stuck worker is replaced.
# The uvicorn worker serves HTTP and the terminal WebSocket (coderadmin.asgi).
CMD ["sh", "-c", "exec gunicorn coderadmin.asgi:application --worker-class uvicorn.workers.UvicornWorker --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-3} --timeout ${GUNICORN_TIMEOUT:-60} --graceful-timeout 30 --keep-alive 5 --max-requests 2000 --max-requests-jitter 200 --access-logfile - --no-control-socket"]
