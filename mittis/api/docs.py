import functools
from pathlib import Path
import re
import threading

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.cache import cache_control
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.views import SpectacularJSONAPIView
from markdown_it import MarkdownIt

from mittis import versions
from mittis.api.catalogue import ERROR_CODES, ERROR_TYPES
from mittis.api.errors import doc_url

# The operations guide and the versioning policy, kept as Markdown beside the code (README.md links them) and
# served at /docs/operations and /docs/versioning.
OPERATIONS_GUIDE = settings.BASE_DIR / "docs" / "operations.md"
VERSIONING_POLICY = settings.BASE_DIR / "docs" / "versioning.md"
# The docs pages' one Markdown renderer. Raw HTML in the Markdown is escaped, not passed through, and links
# with a script's scheme (`javascript:`) are not made links.
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
# Redoc credits Redocly in its sidebar with a logo it always loads from a CDN (no option turns it off): offline,
# a failed request on every visit. /docs loads the sidecar's bundle from `redoc_bundle` instead (REDOC_DIST),
# with that URL replaced by an empty inline image; the credit's text stays.
REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
NO_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


class OpenApiView(SpectacularJSONAPIView):
    """/openapi.json, built once per process. drf-spectacular's view builds it on every request (60-75 ms), and
    two first builds at once in a new process raced in its lazy loading (a 500): here the first request builds
    and renders it under a lock, and every request is answered with those bytes. There is one schema, so the
    `?version=` and `?lang=` that drf-spectacular's view would build another for change nothing."""

    _lock = threading.Lock()
    _built: dict[str, tuple[bytes, str]] = {}  # ROOT_URLCONF (tests swap it): (the JSON, its Content-Disposition)

    def get(self, request, *args, **kwargs):
        urlconf = settings.ROOT_URLCONF
        built = self._built.get(urlconf)
        if built is None:
            with self._lock:
                built = self._built.get(urlconf)
                if built is None:
                    built = self._built[urlconf] = self._build()
        content, disposition = built
        return HttpResponse(content, content_type=request.accepted_renderer.media_type,
                            headers={"Content-Disposition": disposition})

    def _build(self) -> tuple[bytes, str]:
        generator = self.generator_class(urlconf=self.urlconf, patterns=self.patterns)
        schema = generator.get_schema(request=None, public=self.serve_public)
        # Both of the view's renderers write these bytes: they differ in their media type only.
        return (OpenApiJsonRenderer().render(schema, renderer_context={}),
                f'inline; filename="{spectacular_settings.TITLE}.json"')


@cache_control(public=True, max_age=3600)
def redoc_bundle(request):
    """/docs/redoc/bundles/redoc.standalone.js (REDOC_DIST's layout): Redoc, fetching nothing from elsewhere."""
    return HttpResponse(redoc_bundle_bytes(), content_type="text/javascript; charset=utf-8")


@functools.cache
def redoc_bundle_bytes() -> bytes:
    return Path(finders.find(REDOC_BUNDLE)).read_bytes().replace(REDOC_LOGO, NO_IMAGE)


def error_catalogue(request):
    """/docs/errors: every error code, anchored so that an error's doc_url lands on it."""
    return render(request, "docs/errors.html", {"codes": catalogue_rows(), "types": ERROR_TYPES,
                                                "example_doc_url": doc_url("invalid_phone_number")})


@functools.cache
def catalogue_rows() -> list[tuple]:
    """(entry, its description as HTML): the descriptions are Markdown, as in the schema's catalogue."""
    return [(entry, mark_safe(MARKDOWN.renderInline(entry.description))) for entry in ERROR_CODES.values()]


def operations_guide(request):
    """/docs/operations: docs/operations.md as HTML, with an anchor per heading and a contents list."""
    return render(request, "docs/guide.html", markdown_page(OPERATIONS_GUIDE, OPERATIONS_GUIDE.stat().st_mtime_ns))


def versioning_policy(request):
    """/docs/versioning: docs/versioning.md, as the operations guide is served."""
    return render(request, "docs/guide.html", markdown_page(VERSIONING_POLICY, VERSIONING_POLICY.stat().st_mtime_ns))


def changelog(request):
    """/docs/changelog: every version, newest first, with the changes it brought, from the registry
    (mittis/versions.py), each anchored by its date."""
    entries = [{"version": version, "current": version == versions.current(),
                "changes": [MARKDOWN.renderInline(change.description) for change in changes]}
               for version, changes in versions.history()]
    return render(request, "docs/changelog.html", {"versions": entries, "first": versions.FIRST_VERSION})


@functools.lru_cache(maxsize=4)
def markdown_page(path, mtime_ns: int) -> dict:
    """Rendered once per version of the file (`mtime_ns` is the cache key)."""
    tokens = MARKDOWN.parse(path.read_text())
    title, contents, anchors = "", [], set()
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type != "heading_open":
            continue
        text = inline.content.replace("`", "")
        anchor = base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        while anchor in anchors:
            anchor = f"{base}-{len(anchors)}"
        anchors.add(anchor)
        opening.attrSet("id", anchor)
        if opening.tag == "h1" and not title:
            title = text
        elif opening.tag == "h2":
            contents.append((anchor, text))
    return {"title": title, "contents": contents, "html": MARKDOWN.renderer.render(tokens, MARKDOWN.options, {})}


def health(request):
    return JsonResponse({"status": "ok"})
