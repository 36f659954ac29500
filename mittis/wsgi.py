import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mittis.settings")
application = get_wsgi_application()


def warm_up() -> None:
    """Import what the first request would: the URLconf and every view, serializer and model it reaches.

    mittis/serve.py runs this once in the parent, so the forked processes share these pages and serve their
    first request warm (it then freezes them out of the garbage collector). It opens no connection: a socket
    opened before the fork would be shared by every process.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns
