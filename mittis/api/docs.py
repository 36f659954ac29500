import functools
import re

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from markdown_it import MarkdownIt

from mittis.api.catalogue import ERROR_CODES, ERROR_TYPES

# The operations guide, kept as Markdown beside the code (README.md links it) and served at /docs/operations.
OPERATIONS_GUIDE = settings.BASE_DIR / "docs" / "operations.md"


def error_catalogue(request):
    """/docs/errors: every error code, anchored so that an error's doc_url lands on it."""
    return render(request, "docs/errors.html", {"codes": ERROR_CODES.values(), "types": ERROR_TYPES})


def operations_guide(request):
    """/docs/operations: docs/operations.md as HTML, with an anchor per heading and a contents list."""
    return render(request, "docs/guide.html", markdown_page(OPERATIONS_GUIDE, OPERATIONS_GUIDE.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def markdown_page(path, mtime_ns: int) -> dict:
    """Rendered once per version of the file (`mtime_ns` is the cache key). Raw HTML in the Markdown is
    escaped, not passed through."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(path.read_text())
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
    return {"title": title, "contents": contents, "html": md.renderer.render(tokens, md.options, {})}


def health(request):
    return JsonResponse({"status": "ok"})
