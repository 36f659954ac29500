import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mittis.settings")
application = get_wsgi_application()


def warm_up() -> None:
    """Import what the first request would: the URLconf and every view, serializer and model it reaches.

    Under gunicorn's preload_app this runs once in the master, so forked workers share these pages and
    serve their first request warm (mittis/gunicorn_conf.py then freezes them out of the garbage
    collector). It opens no connection: a socket opened before the fork would be shared by every worker.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns
