"""Settings for coderadmin, read from environment variables (see .env.example).

With nothing set the product runs on one machine with no servers to install: SQLite and a
filesystem Celery broker under ``var/``, and the built-in simulated cluster. Each variable below
switches one part to the real thing.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("CODERADMIN_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
# Development conveniences are on only when explicitly asked for, never by accident in production.
_DEV_SECRET = "dev-only-insecure-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.example).")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "coderadmin",
    "environments",
    "infrastructure",
]

MIDDLEWARE = [
    "coderadmin.middleware.SecurityHeadersMiddleware",
    "coderadmin.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "coderadmin.urls"
WSGI_APPLICATION = "coderadmin.wsgi.application"
AUTH_USER_MODEL = "coderadmin.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "coderadmin.context_processors.ui",
            ],
        },
    }
]

# --- Database: SQLite under var/ unless DATABASE_URL is given -------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'coderadmin.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery: filesystem broker under var/ unless REDIS_URL is given ---------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("in", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "in"),
        "data_folder_out": str(_broker_dir / "in"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Broadcast/control messages (celery inspect, remote control); default is ./control.
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# The drift reconciler: one sweep every RECONCILE_INTERVAL_SECONDS (see infrastructure/reconciler.py).
RECONCILE_INTERVAL_SECONDS = env.int("RECONCILE_INTERVAL_SECONDS", default=60)
# What a sweep does when a Running/Building environment's pod has vanished: "error" or "rebuild".
RECONCILE_POD_MISSING_ACTION = env.str("RECONCILE_POD_MISSING_ACTION", default="error")
if RECONCILE_POD_MISSING_ACTION not in {"error", "rebuild"}:
    raise ImproperlyConfigured("RECONCILE_POD_MISSING_ACTION must be error or rebuild.")
# autodiscover_tasks only imports <app>.tasks; the reconciler's task lives beside its logic.
CELERY_IMPORTS = ("infrastructure.reconciler",)
CELERY_BEAT_SCHEDULE: dict = {
    "infrastructure.reconcile": {
        "task": "infrastructure.reconcile",
        "schedule": RECONCILE_INTERVAL_SECONDS,
        "options": {"expires": RECONCILE_INTERVAL_SECONDS},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Cache: Redis when REDIS_URL is given, else files under var/ (shared by every process) ---
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "coderadmin",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Sign-in protection and client addresses ------------------------------------------------
# Failed sign-ins allowed per username and client address within the window (seconds). The
# counter expires with the window, so the real user is never locked out for longer than that.
LOGIN_RATE_LIMIT_ATTEMPTS = env.int("LOGIN_RATE_LIMIT_ATTEMPTS", default=5)
LOGIN_RATE_LIMIT_WINDOW = env.int("LOGIN_RATE_LIMIT_WINDOW", default=300)
# Number of reverse proxies in front of the app that append to X-Forwarded-For. 0 means the
# TCP peer address is the client (never trust a header nobody in front of us controls).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Cluster --------------------------------------------------------------------------------
# "simulated": the built-in simulated cluster (the embedded default); "kubeconfig": the file in
# KUBECONFIG (or ~/.kube/config); "incluster": the pod's service account.
_default_cluster = "simulated"
if env.str("KUBECONFIG", default=""):
    _default_cluster = "kubeconfig"
elif env.str("KUBERNETES_SERVICE_HOST", default=""):
    _default_cluster = "incluster"
CLUSTER_MODE = env.str("CODERADMIN_CLUSTER", default=_default_cluster)
if CLUSTER_MODE not in {"simulated", "kubeconfig", "incluster"}:
    raise ImproperlyConfigured("CODERADMIN_CLUSTER must be one of: simulated, kubeconfig, incluster.")
KUBECONFIG = env.str("KUBECONFIG", default="")
# Where the simulated cluster writes its kubeconfig, and the profile it loads.
SIMULATOR_KUBECONFIG = env.str("SIMULATOR_KUBECONFIG", default=str(VAR_DIR / "simulator" / "kubeconfig"))
SIMULATOR_PROFILE = env.str("SIMULATOR_PROFILE", default="demo")
ALLOW_SIMULATED_CLUSTER = env.bool("ALLOW_SIMULATED_CLUSTER", default=DEBUG)
if CLUSTER_MODE == "simulated" and not ALLOW_SIMULATED_CLUSTER:
    raise ImproperlyConfigured(
        "The simulated cluster is refused in production. Set KUBECONFIG (or run in-cluster), "
        "or set ALLOW_SIMULATED_CLUSTER=true to try the product on the simulated cluster."
    )

# Registry prefix of the supervising container image: the default image of a fresh install is
# <prefix>/coderadmin-supervisor:<product version>, the image built by infrastructure/supervisor/build.sh.
SUPERVISOR_IMAGE_PREFIX = env.str("SUPERVISOR_IMAGE_PREFIX", default="ghcr.io/coderadmin")

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("STATIC_MANIFEST", default=not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Content-Security-Policy: no inline scripts, nothing from other origins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Key for registry credentials encrypted at rest (Fernet, urlsafe base64 of 32 bytes).
# Derived from SECRET_KEY when unset, so rotating SECRET_KEY without setting this loses them.
CREDENTIALS_ENCRYPTION_KEY = env.str("CREDENTIALS_ENCRYPTION_KEY", default="")

LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "coderadmin.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Observability and data lifecycle (metrics, heartbeats, request ids, retention) ----------
# Bearer token Prometheus sends to /metrics; empty turns the endpoint off (404).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# prometheus-client multiprocess mode: every process writes its counters here and /metrics merges
# them. Processes whose numbers should appear together must share it; empty it before they start.
PROMETHEUS_MULTIPROC_DIR = Path(env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "metrics")))
# Worker and beat record a heartbeat this often; one older than the max age counts as dead.
HEARTBEAT_INTERVAL_SECONDS = env.int("HEARTBEAT_INTERVAL_SECONDS", default=30)
HEARTBEAT_MAX_AGE_SECONDS = env.int("HEARTBEAT_MAX_AGE_SECONDS", default=120)
# Days environment events and audit entries are kept (pruned daily); 0 keeps them forever.
EVENT_RETENTION_DAYS = env.int("EVENT_RETENTION_DAYS", default=90)
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
MIDDLEWARE.insert(0, "coderadmin.requestid.RequestIdMiddleware")
MIDDLEWARE.insert(
    MIDDLEWARE.index("coderadmin.middleware.HealthCheckMiddleware") + 1,
    "coderadmin.metrics.MetricsEndpointMiddleware",
)
LOGGING["filters"] = {"context": {"()": "coderadmin.logs.ContextFilter"}}
LOGGING["handlers"]["console"]["filters"] = ["context"]
# Task modules outside <app>.tasks, and the modules whose Celery signal hooks must be connected.
CELERY_IMPORTS = (*CELERY_IMPORTS, "coderadmin.heartbeat", "coderadmin.lifecycle", "coderadmin.metrics")
from celery.schedules import crontab  # noqa: E402 (used by this block only)

CELERY_BEAT_SCHEDULE.update(
    {
        "coderadmin.beat_tick": {
            "task": "coderadmin.beat_tick",
            "schedule": HEARTBEAT_INTERVAL_SECONDS,
            "options": {"expires": HEARTBEAT_INTERVAL_SECONDS},
        },
        # At a fixed time of day, so it runs even when beat restarts more often than daily.
        "coderadmin.prune": {"task": "coderadmin.prune", "schedule": crontab(hour=3, minute=17)},
    }
)

# --- Browser terminal (environments/consumers.py): Channels on ASGI ---------------------------
# The terminal WebSocket is served by coderadmin.asgi (gunicorn's uvicorn worker). No channel
# layer: sessions notice a stopped environment by reading its state. Concurrent terminals are
# counted in the cache above, which every process shares.
ASGI_APPLICATION = "coderadmin.asgi.application"
# A terminal with neither input nor output for this long is closed.
TERMINAL_IDLE_TIMEOUT_SECONDS = env.int("TERMINAL_IDLE_TIMEOUT_SECONDS", default=1800)
# No terminal session lasts longer than this, busy or not.
TERMINAL_MAX_SESSION_SECONDS = env.int("TERMINAL_MAX_SESSION_SECONDS", default=8 * 3600)
# Open terminals allowed per environment at once (every browser tab counts).
TERMINAL_MAX_PER_ENVIRONMENT = env.int("TERMINAL_MAX_PER_ENVIRONMENT", default=4)
