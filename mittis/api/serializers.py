"""Serializer building blocks for strict, predictable input."""

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Refuses parameters it does not declare, so a misspelt one never passes silently."""

    def to_internal_value(self, data):
        unknown = []
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields.keys()))
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown:
                exc.detail.update(_unknown_errors(unknown))
            raise
        if unknown:
            raise serializers.ValidationError(_unknown_errors(unknown))
        return value


def _unknown_errors(names):
    return {
        name: [serializers.ErrorDetail(f"'{name}' is not a parameter of this endpoint.", code="parameter_unknown")]
        for name in names
    }


class StrictCharField(serializers.CharField):
    """A string and only a string: DRF's CharField would turn 42 into "42"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(f"'{self.field_name}' must be a string.", code="parameter_invalid_type")
        return super().to_internal_value(data)


class NoParamsSerializer(StrictSerializer):
    """For POSTs that take no parameters: a body, if any, must be an empty JSON object."""


def no_params(request) -> None:
    """Refuse parameters an action does not take (a 400 naming them), as every endpoint refuses unknown ones."""
    NoParamsSerializer(data=request.data).is_valid(raise_exception=True)
