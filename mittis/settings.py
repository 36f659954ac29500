"""Mittis settings: one file, every value from the environment, with embedded defaults.

PostgreSQL and Redis always: `DATABASE_URL` and `CELERY_BROKER_URL` name them in production. Without
them, the servers that `make run` and `make test` start from pip-installed wheels (`mittis.embedded`)
are used while they run, so a fresh machine runs the same code as production.
"""

import base64
from datetime import timedelta
import os
from pathlib import Path
import secrets

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
import environ

from mittis import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime state of the embedded defaults (the embedded servers' data, export files, generated secrets).
VAR_DIR = Path(environ.Env().str("MITTIS_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win


def _embedded_secret(name: str, generate) -> str:
    """A per-checkout secret generated once under var/, so no secret is ever committed."""
    path = VAR_DIR / name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(generate())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


# --- Core -------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _embedded_secret("secret_key", lambda: secrets.token_urlsafe(50))
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS and security headers -----------------------------------------------------------------
# Always: nosniff, X-Frame-Options DENY, Referrer-Policy same-origin, COOP same-origin (Django's defaults).
# In production Mittis is served over HTTPS behind a proxy that terminates TLS and sets X-Forwarded-Proto:
# MITTIS_HTTPS=true turns on the redirect, HSTS and secure cookies (`manage.py check --deploy` is clean).
# Off by default because `make run` and the tests serve plain HTTP on 127.0.0.1.
MITTIS_HTTPS = env.bool("MITTIS_HTTPS", default=False)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if MITTIS_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "mittis.console.apps.MittisAdminConfig",  # the Django admin, as the staff console
    "mittis.accounts",  # before auth: its createsuperuser (validated passwords) replaces auth's
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",  # staff login lockouts (see "Staff console" below)
    "mittis.api",
    "billing",
    "webhooks",
    "messaging",
    "mittis.ops",  # commands that drive every app (bench, loadtest, reencrypt_secrets)
]

MIDDLEWARE = [
    "mittis.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "mittis.api.versioning.ApiVersionMiddleware",  # around the rate limiter: a 429 names its version too
    "mittis.api.middleware.RateLimitMiddleware",  # before any work, after static files
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "axes.middleware.AxesMiddleware",  # answers a locked-out login (see "Staff console" below)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mittis.api.idempotency.IdempotencyMiddleware",  # innermost: its transaction spans the view only
]

ROOT_URLCONF = "mittis.urls"
WSGI_APPLICATION = "mittis.wsgi.application"
APPEND_SLASH = False  # API paths are exact; a redirect would drop a POST body

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
            ],
        },
    },
]

# --- Staff console: logins and passwords --------------------------------------------------------
# Staff log in to the admin with a password; customers use API keys, which never pass through these backends.
AUTHENTICATION_BACKENDS = [
    "mittis.accounts.backends.StaffLoginLockoutBackend",  # django-axes: refuses a locked-out login first
    "django.contrib.auth.backends.ModelBackend",
]
# Failures are counted per user name and client address together, so that someone guessing one name cannot
# lock out another, nor lock a user out from their own address. The fifth failure locks that pair out for the
# cool-off; a failure while locked out starts it again; a successful login clears the count. A locked-out
# login is refused before its password is hashed (each hash is ~0.3 s of CPU).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The address the rate limiter counts (behind MITTIS_TRUSTED_PROXIES, the client's, not the load balancer's):
# otherwise every login would come from the balancer, and anyone could lock a staff member out.
AXES_CLIENT_IP_CALLABLE = "mittis.console.admin_site.login_address"
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "mittis.console.admin_site.locked_out"  # 429, Retry-After, the console's look
AXES_ENABLE_ADMIN = False  # the console registers axes' models itself, for superusers only
AXES_VERBOSE = False  # no banner from every process at start; failures and lockouts are still logged
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Database ---------------------------------------------------------------------------------
def _required_url(name: str, embedded_service: str, what: str) -> str:
    url = env.str(name, default="") or embedded.running_url(embedded_service)
    if not url:
        raise ImproperlyConfigured(
            f"{name} is not set and the embedded {what} of `make run` is not running. Set {name}, or run the "
            "command through `make run`/`make test` or `.venv/bin/python -m mittis.embedded -- <command>`.")
    return url


DATABASES = {"default": env.db_url_config(_required_url("DATABASE_URL", "postgres", "PostgreSQL"))}
# A test database of its own per test run, so that two runs on one server never drop each other's.
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must name a PostgreSQL database (postgres://...): the only one Mittis runs on.")
# Connections persist for 10 minutes, checked before each request's first query: a new connection
# prepares and plans its statements again, which slowed every server thread for its first seconds.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=600))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Parameters travel beside the statement instead of quoted into it: a worker's batch statements carry
# thousands of values (event payloads, arrays), and quoting them in Python was a third of a batch's cost.
DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
# A statement run twice on a connection is prepared: the accept statement's planning was a third of its
# PostgreSQL CPU. "off" for a pooler that cannot keep prepared statements (PgBouncer before 1.21 in
# transaction mode).
_prepare = env.str("DATABASE_PREPARE_THRESHOLD", default="2")
DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", None if _prepare == "off" else int(_prepare))
# A streaming replica of the primary, for reads that may trail the writes by a moment: lists, exports, usage, the
# dashboard (mittis/replica.py). It is skipped while more than MITTIS_REPLICA_MAX_LAG seconds behind.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = {**env.db_url_config(env.str("DATABASE_REPLICA_URL")),
                            **{key: DATABASES["default"][key] for key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")},
                            "OPTIONS": dict(DATABASES["default"]["OPTIONS"]),
                            # The tests' replica reads the tests' database (tests/test_replica.py starts a real one).
                            "TEST": {"MIRROR": "default"}}
DATABASE_ROUTERS = ["mittis.replica.ReplicaRouter"]
MITTIS_REPLICA_MAX_LAG = env.float("MITTIS_REPLICA_MAX_LAG", default=5.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# --- Time, language, static files -------------------------------------------------------------
# A request body over 1 MB is refused with 413 request_too_large (an SMS is at most 1,600 characters).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    # Export files: local files by default; any storage by setting, e.g. django-storages' S3 backend
    # MITTIS_EXPORT_STORAGE_BACKEND=storages.backends.s3.S3Storage MITTIS_EXPORT_STORAGE_OPTIONS='{"bucket_name": ...}'
    "exports": {
        "BACKEND": env.str("MITTIS_EXPORT_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
        "OPTIONS": env.json("MITTIS_EXPORT_STORAGE_OPTIONS", default={"location": str(VAR_DIR / "exports")}),
    },
}
# Export files are downloadable this long, then deleted.
MITTIS_EXPORT_DAYS = env.int("MITTIS_EXPORT_DAYS", default=7)
# Exports an account may have pending or running at once, in each mode; beyond that POST /v1/exports is a 429.
MITTIS_EXPORTS_AT_ONCE = env.int("MITTIS_EXPORTS_AT_ONCE", default=3)
# Seconds an export task writes rows before it checkpoints and leaves the rest to its next task: under the soft time
# limit (CELERY_TASK_SOFT_TIME_LIMIT, 60 s), with room for the first slice's count and the part's upload.
MITTIS_EXPORT_SLICE_SECONDS = env.float("MITTIS_EXPORT_SLICE_SECONDS", default=40.0)
# Serve static files straight from the apps, so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["mittis.accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["mittis.api.renderers.VersionedJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["mittis.api.parsers.ApiJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "mittis.api.negotiation.ApiContentNegotiation",
    "EXCEPTION_HANDLER": "mittis.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Mittis API",
    "VERSION": "v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "/docs/redoc",  # the sidecar's Redoc, served by mittis.api.docs.redoc_bundle
    "COMPONENT_SPLIT_REQUEST": True,
    # Declared for the test helpers' description; every tag in the order /docs showed them undeclared (Redoc lists
    # declared tags first), so the reference reads as before.
    "TAGS": [{"name": "Billing"}, {"name": "Webhooks"}, {"name": "Exports"}, {"name": "Messages"},
             {"name": "Test helpers",
              "description": "**Test mode only.** Make happen now what a carrier or a phone would make happen in "
                             "test mode: an inbound message (STOP, START and HELP included) and a delivery report. "
                             "Each goes through the same path as the carrier's own, with the same events and "
                             "webhooks. With a live key they do not exist: `404 url_not_found`."}],
    "PREPROCESSING_HOOKS": ["mittis.api.schema.only_public_api"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mittis.api.schema.describe_every_operation",
        "mittis.openapi.describe_api",
    ],
    "ENUM_NAME_OVERRIDES": {"EventTypeEnum": "webhooks.serializers.EVENT_TYPES",
                            "ExportStatusEnum": ["pending", "running", "succeeded", "failed"],
                            "MessageStatusEnum": "messaging.statuses.ALL",
                            "MessageErrorCodeEnum": "messaging.errors.MESSAGE_ERRORS",
                            "DeliveryReportStatusEnum": "messaging.carriers.sandbox.CARRIER_STATUSES"},
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = _required_url("CELERY_BROKER_URL", "redis", "Redis")
# A request that enqueues must not hang while the broker is down: give up in about a second.
# Nothing is lost: queued messages and pending webhook deliveries are swept up by beat tasks.
MITTIS_BROKER_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}
# A task a worker took and never acknowledged (it was killed) is delivered again after the visibility
# timeout, Redis's default being an hour. Five minutes fits the longest a task is held: a countdown of at most
# `mittis.celery.MAX_COUNTDOWN` (180 s) and the hard time limit (CELERY_TASK_TIME_LIMIT, 90 s).
CELERY_BROKER_TRANSPORT_OPTIONS = {**MITTIS_BROKER_PUBLISH_RETRY, "visibility_timeout": 300}
CELERY_TASK_IGNORE_RESULT = True  # tasks write their outcome to the database
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-queued-messages": {"task": "messaging.requeue_stale_messages", "schedule": 60.0},
    # Scheduled messages are queued by this sweep, not by broker countdowns weeks long.
    "dispatch-scheduled-messages": {"task": "messaging.dispatch_scheduled", "schedule": 5.0},
    "expire-overdue-messages": {"task": "messaging.expire_overdue", "schedule": 60.0},
    "close-stuck-messages": {"task": "messaging.close_stuck", "schedule": 3600.0},
    # A send whose worker died mid-call is settled (never sent twice) instead of waiting for close_stuck.
    "recover-interrupted-sends": {"task": "messaging.recover_interrupted_sends", "schedule": 60.0},
    # A sandbox report whose task was lost (the broker lost it) is asked for again.
    "recover-lost-reports": {"task": "messaging.recover_lost_reports", "schedule": 60.0},
    "redact-past-retention": {"task": "messaging.redact_past_retention",
                              "schedule": crontab(hour=3, minute=0)},
    "delete-expired-exports": {"task": "messaging.delete_expired_exports", "schedule": 3600.0},
    # Export files re-written after a redaction, whose task was lost (they are not served until then).
    "scrub-redacted-exports": {"task": "messaging.scrub_exports", "schedule": 300.0},
    # Exports whose next slice's task was lost (published while the broker was down).
    "resume-stalled-exports": {"task": "messaging.resume_exports", "schedule": 300.0},
}

# --- Queues -----------------------------------------------------------------------------------
# Every task's concern, which is its queue: each concern has a worker pool of its own (Procfile), so a slow
# webhook receiver or a large export never waits in front of a send. A sweep that only finds work and
# enqueues it is a sweep; one that does a concern's work, or whose delay is that concern's delay, goes with
# it. Every task of the app is here (tests/test_queues.py fails otherwise).
MITTIS_TASK_QUEUES = {
    "messaging.dispatch": "sends",
    "messaging.send_message": "sends",
    # A scheduled message waits for this sweep (every 5 s), so its delay is a send's delay: behind a night's
    # retention on the sweeps pool it would be late.
    "messaging.dispatch_scheduled": "sends",
    # `make bench` compares the pipeline with Celery's own rate for a no-op: on the same queue as the sends.
    "api.noop": "sends",
    "messaging.process_delivery_reports": "reports",
    # It asks the carriers for late reports and applies the answers: a report's own work.
    "messaging.recover_lost_reports": "reports",
    "webhooks.deliver": "webhooks",
    "webhooks.flush_endpoint": "webhooks",
    # It delivers an endpoint's missed events again: receivers' time, like any delivery.
    "webhooks.recover_endpoint": "webhooks",
    "messaging.run_export": "exports",
    "messaging.scrub_export": "exports",
    # It deletes expired export files from their storage: the exports' storage, not the database's rows.
    "messaging.delete_expired_exports": "exports",
    # These find work and leave it to its concern's queue (deliver, scrub_export, send_message), or settle rows
    # in short batches: none of them must wait behind a receiver or an export.
    "webhooks.sweep_deliveries": "sweeps",
    "messaging.scrub_exports": "sweeps",
    "messaging.resume_exports": "sweeps",
    "messaging.requeue_stale_messages": "sweeps",
    "messaging.recover_interrupted_sends": "sweeps",
    "messaging.expire_overdue": "sweeps",
    "messaging.close_stuck": "sweeps",
    "messaging.redact_past_retention": "sweeps",  # long: the sweeps pool has a second process for the rest
    "api.purge_expired_idempotency_keys": "sweeps",
    "ops.maintain_partitions": "sweeps",
}
# Before every queue's name: empty in production. The tests give each run queues of its own on a shared broker.
MITTIS_QUEUE_PREFIX = env.str("MITTIS_QUEUE_PREFIX", default="")
CELERY_TASK_ROUTES = ("mittis.celery.route_by_concern",)

# --- Mittis -----------------------------------------------------------------------------------
# The reference endpoints of `make bench` (/bench/r1..r4); never on in production.
MITTIS_BENCH_REFERENCES = env.bool("MITTIS_BENCH_REFERENCES", default=False)
# Where carriers reach us (Twilio status callbacks and inbound messages): this server's public URL.
MITTIS_PUBLIC_URL = env.str("MITTIS_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
# The message lifecycle: how long a message may wait for a carrier (seconds), how far ahead it may be
# scheduled, and when a sent message without a final report is closed.
MITTIS_DEFAULT_VALIDITY_PERIOD = env.int("MITTIS_DEFAULT_VALIDITY_PERIOD", default=4 * 3600)
MITTIS_SCHEDULE_MIN_SECONDS = 60
MITTIS_SCHEDULE_MAX_DAYS = 35
MITTIS_STUCK_AFTER_HOURS = env.int("MITTIS_STUCK_AFTER_HOURS", default=72)
# Messages per second a sender may send, by its type (a sender's own `mps` overrides).
MITTIS_SENDER_MPS = {"long_code": 1, "toll_free": 3, "short_code": 100, "alphanumeric": 10}
# Carrier used for live messages until routing (issue 6) lands; test mode always uses the sandbox.
MITTIS_LIVE_CARRIER = env.str("MITTIS_LIVE_CARRIER", default="sandbox")
# Seconds the sandbox carrier waits before reporting delivery, like a handset answering.
MITTIS_SANDBOX_REPORT_DELAY = env.float("MITTIS_SANDBOX_REPORT_DELAY", default=2.0)
# Batch dispatchers of test-mode sends that may run at once (see messaging/services.py): at least the
# number of worker processes, so that every core can send.
MITTIS_SEND_DISPATCHERS = env.int("MITTIS_SEND_DISPATCHERS", default=4)

# --- Rate limits and idempotency --------------------------------------------------------------
# Requests per API key per window (seconds); an account may have its own, set in the admin.
MITTIS_RATE_LIMIT = env.int("MITTIS_RATE_LIMIT", default=100)
MITTIS_RATE_LIMIT_WINDOW = env.int("MITTIS_RATE_LIMIT_WINDOW", default=1)
# Requests without a valid key, per client address, in the same window.
MITTIS_ANONYMOUS_RATE_LIMIT = env.int("MITTIS_ANONYMOUS_RATE_LIMIT", default=100)
# Counters, throughput slots and coordination marks live in Redis, shared by every process: the broker's
# Redis, or REDIS_URL beside a RabbitMQ broker.
MITTIS_RATE_LIMIT_REDIS_URL = env.str(
    "REDIS_URL", default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "")
if not MITTIS_RATE_LIMIT_REDIS_URL:
    raise ImproperlyConfigured("REDIS_URL must name a Redis server when the broker (CELERY_BROKER_URL) is not Redis.")
MITTIS_RATE_LIMIT_PREFIX = env.str("MITTIS_RATE_LIMIT_PREFIX", default="mittis:rl")
# While that Redis cannot be reached: admit requests uncounted (true), or refuse each with 503 service_unavailable
# (false). Open by default: everything a request does is kept in PostgreSQL (sends, charges, idempotency), and
# sends accepted while the broker, often that same Redis, is down go out with the sweeps afterwards; refusing
# would turn an outage of counters into an outage of the API. Closed suits a deployment where the limit
# protects more than availability is worth (a carrier's bill).
MITTIS_RATE_LIMIT_FAIL_OPEN = env.bool("MITTIS_RATE_LIMIT_FAIL_OPEN", default=True)
# Behind a load balancer every request comes from its address, so anonymous clients would share one bucket.
# The proxies (CIDR networks) whose forwarded-for header (a comma-separated list of addresses) is believed:
# only when the direct peer is one of them, and the client is the header's right-most address that is not.
MITTIS_TRUSTED_PROXIES = env.list("MITTIS_TRUSTED_PROXIES", default=[])
MITTIS_FORWARDED_FOR_HEADER = env.str("MITTIS_FORWARDED_FOR_HEADER", default="X-Forwarded-For")
# Idempotency keys are kept this long (the contract promises at least 24 hours).
MITTIS_IDEMPOTENCY_KEY_HOURS = env.int("MITTIS_IDEMPOTENCY_KEY_HOURS", default=24)
# A request transaction idle this long has lost its client: PostgreSQL ends it, releasing its key.
MITTIS_ABANDONED_REQUEST_SECONDS = env.float("MITTIS_ABANDONED_REQUEST_SECONDS", default=10)
# --- History ----------------------------------------------------------------------------------
# The append-only tables (models with PARTITION_KEY: mittis/partitions.py) are partitioned by month. Whole months
# older than this are dropped (a month's rows go at once, with no DELETE); the messages themselves, their status,
# times and price stay. Partitions are made this many months ahead of the current one.
MITTIS_HISTORY_MONTHS = env.int("MITTIS_HISTORY_MONTHS", default=13)
MITTIS_PARTITIONS_AHEAD = env.int("MITTIS_PARTITIONS_AHEAD", default=3)
CELERY_BEAT_SCHEDULE["maintain-partitions"] = {"task": "ops.maintain_partitions", "schedule": crontab(hour=2, minute=30)}
CELERY_BEAT_SCHEDULE["purge-expired-idempotency-keys"] = {
    "task": "api.purge_expired_idempotency_keys",
    "schedule": 3600.0,
}

# --- Secrets at rest --------------------------------------------------------------------------
# Fernet keys (urlsafe base64 of 32 bytes), comma-separated, newest first: the first encrypts, all
# decrypt. Rotate by putting a new key first, then `manage.py reencrypt_secrets`, then drop the old.
MITTIS_ENCRYPTION_KEYS = env.list("MITTIS_ENCRYPTION_KEYS", default=[]) or [
    _embedded_secret("encryption_key", _fernet_key)]

# --- Webhooks ---------------------------------------------------------------------------------
# Seconds before each retry after a failed delivery (the contract's schedule; jitter is added).
MITTIS_WEBHOOK_RETRY_SCHEDULE = [float(s) for s in env.list(
    "MITTIS_WEBHOOK_RETRY_SCHEDULE",
    default=["5", "300", "1800", "7200", "18000", "36000", "50400", "72000", "86400"])]
MITTIS_WEBHOOK_TIMEOUT = env.float("MITTIS_WEBHOOK_TIMEOUT", default=15.0)
# Flushes that may deliver to one endpoint at once, each a share of its messages (one message's events stay
# in order). More than the worker processes gains nothing; changing it reorders only events in flight.
MITTIS_WEBHOOK_FLUSH_LANES = env.int("MITTIS_WEBHOOK_FLUSH_LANES", default=2)
# `http://` endpoint URLs in live mode (test mode always allows them). For local development only.
MITTIS_WEBHOOK_ALLOW_HTTP = env.bool("MITTIS_WEBHOOK_ALLOW_HTTP", default=False)
# Hosts or networks (CIDR) that may be private, loopback or link-local, e.g. "127.0.0.1,10.0.0.0/8".
MITTIS_WEBHOOK_ALLOWED_PRIVATE = env.list("MITTIS_WEBHOOK_ALLOWED_PRIVATE", default=[])
# A PEM file of CAs to verify receivers' certificates against instead of the system's (a private CA).
MITTIS_WEBHOOK_CA_FILE = env.str("MITTIS_WEBHOOK_CA_FILE", default="")
CELERY_BEAT_SCHEDULE["sweep-webhook-deliveries"] = {
    "task": "webhooks.sweep_deliveries",
    "schedule": 30.0,
}
