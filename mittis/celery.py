import gc
import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mittis.settings")

app = Celery("mittis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def freeze_loaded_objects(**_):
    """The worker's main process has set Django up and imported every task: freeze what it loaded out of the
    garbage collector before the pool forks, as gunicorn's master does (mittis/gunicorn_conf.py). Otherwise
    each full collection in a pool process walks the whole loaded project (~100,000 objects, ~60 ms) in the
    middle of a batch."""
    gc.collect()
    gc.freeze()
