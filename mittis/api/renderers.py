"""The API's one renderer (REST_FRAMEWORK's DEFAULT_RENDERER_CLASSES). Apart from mittis.api's other modules: DRF
imports it while loading its views, which those modules import."""

from rest_framework.renderers import JSONRenderer

from mittis import versions


class VersionedJSONRenderer(JSONRenderer):
    """Every answer in its request's version (`request.api_version`, mittis.api.versioning). In the current one,
    most requests' version, the data is rendered as the view built it."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        version = getattr((renderer_context or {}).get("request"), "api_version", None)
        if version is not None and version != versions.current() and data is not None:
            data = versions.downgrade(data, version)
        return super().render(data, accepted_media_type, renderer_context)
