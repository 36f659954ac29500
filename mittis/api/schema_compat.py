"""What would break a client of `/v1`: the committed OpenAPI schema against the one the code generates now.

A client written against the committed schema keeps working if every path, method, status code, field and
enum value it could rely on is still there, and nothing it need not send has become required. Additions
pass. Fields are compared where clients meet them (each operation's parameters, request body and
responses, `$ref`s resolved), so renaming a component alone is not a break, but renaming a field is.
"""

import json
from pathlib import Path

from django.conf import settings

COMMITTED = Path(settings.BASE_DIR) / "mittis" / "api" / "openapi-v1.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def generated_schema() -> dict:
    """The schema `/openapi.json` serves, as plain JSON."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(schema, renderer_context={}))


def committed_schema() -> dict:
    return json.loads(COMMITTED.read_text())


def write_committed(schema: dict) -> None:
    COMMITTED.write_text(json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def breaking_changes(old: dict, new: dict) -> list[str]:
    """Every way `new` breaks a client of `old`, one line each; empty when it is compatible."""
    found: list[str] = []
    for path, old_item in old.get("paths", {}).items():
        new_item = new.get("paths", {}).get(path)
        if new_item is None:
            found.append(f"{path}: path removed")
            continue
        for method in METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            if method not in new_item:
                found.append(f"{where}: operation removed")
                continue
            found += _operation(where, old_item[method], new_item[method], old, new)
    return found


def _operation(where: str, old_op: dict, new_op: dict, old: dict, new: dict) -> list[str]:
    found = []
    old_params = {(p["in"], p["name"]): p for p in map(lambda p: _resolve(p, old), old_op.get("parameters", []))}
    new_params = {(p["in"], p["name"]): p for p in map(lambda p: _resolve(p, new), new_op.get("parameters", []))}
    for key, param in old_params.items():
        if key not in new_params:
            found.append(f"{where}: {key[0]} parameter '{key[1]}' removed")
            continue
        if new_params[key].get("required") and not param.get("required"):
            found.append(f"{where}: {key[0]} parameter '{key[1]}' became required")
        found += _schema(f"{where}: {key[0]} parameter '{key[1]}'", param.get("schema", {}),
                         new_params[key].get("schema", {}), old, new, request=True)
    for key, param in new_params.items():
        if key not in old_params and param.get("required"):
            found.append(f"{where}: new required {key[0]} parameter '{key[1]}'")

    old_body = _json_schema(old_op.get("requestBody"), old)
    new_body = _json_schema(new_op.get("requestBody"), new)
    if old_body is not None:
        if new_body is None:
            found.append(f"{where}: request body removed")
        else:
            found += _schema(f"{where}: request body", old_body, new_body, old, new, request=True)
    elif new_body is not None and (new_op.get("requestBody") or {}).get("required"):
        found.append(f"{where}: a request body became required")

    new_responses = new_op.get("responses", {})
    for status, old_response in old_op.get("responses", {}).items():
        if status not in new_responses:
            found.append(f"{where}: response {status} removed")
            continue
        old_schema = _json_schema(old_response, old)
        new_schema = _json_schema(new_responses[status], new)
        if old_schema is not None:
            if new_schema is None:
                found.append(f"{where}: response {status} lost its body")
            else:
                found += _schema(f"{where}: response {status}", old_schema, new_schema, old, new, request=False)
    return found


def _schema(where: str, old_s: dict, new_s: dict, old: dict, new: dict, *, request: bool, depth: int = 0) -> list[str]:
    """Fields removed, enum values removed, a type changed, a field newly required (in a request)."""
    if depth > 12:  # a recursive schema: deep enough to have seen every field
        return []
    old_s, new_s = _resolve(old_s, old), _resolve(new_s, new)
    found = []
    old_type, new_type = _types(old_s), _types(new_s)
    if old_type and new_type and not old_type <= new_type:
        found.append(f"{where}: type {'/'.join(sorted(old_type))} became {'/'.join(sorted(new_type))}")
    old_enum, new_enum = _enum(old_s, old), _enum(new_s, new)
    if old_enum is not None and new_enum is not None:
        for value in sorted(old_enum - new_enum, key=str):
            found.append(f"{where}: enum value {value!r} removed")
    old_props, new_props = _properties(old_s, old), _properties(new_s, new)
    for name, old_prop in old_props.items():
        if name not in new_props:
            found.append(f"{where}: field '{name}' removed")
            continue
        found += _schema(f"{where}.{name}", old_prop, new_props[name], old, new, request=request, depth=depth + 1)
    if request:
        old_required, new_required = _required(old_s, old), _required(new_s, new)
        for name in sorted(new_required - old_required):
            found.append(f"{where}: field '{name}' became required")
    if "items" in old_s and "items" in new_s:
        found += _schema(f"{where}[]", old_s["items"], new_s["items"], old, new, request=request, depth=depth + 1)
    return found


def _resolve(node: dict, document: dict) -> dict:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        target = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {})
        node, seen = target, seen + 1
    return node if isinstance(node, dict) else {}


def _json_schema(holder: dict | None, document: dict) -> dict | None:
    holder = _resolve(holder or {}, document)
    content = holder.get("content") or {}
    media = content.get("application/json") or next(iter(content.values()), None)
    return media.get("schema") if media else None


def _flatten(schema: dict, document: dict) -> list[dict]:
    """A schema and the parts of its allOf/oneOf/anyOf, resolved."""
    schema = _resolve(schema, document)
    parts = [schema]
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(key, []):
            parts += _flatten(part, document)
    return parts


def _properties(schema: dict, document: dict) -> dict:
    found = {}
    for part in _flatten(schema, document):
        found.update(part.get("properties", {}))
    return found


def _required(schema: dict, document: dict) -> set:
    return {name for part in _flatten(schema, document) for name in part.get("required", [])}


def _enum(schema: dict, document: dict) -> set | None:
    values = [part["enum"] for part in _flatten(schema, document) if "enum" in part]
    return {json.dumps(v, sort_keys=True) for group in values for v in group} if values else None


def _types(schema: dict) -> set:
    kind = schema.get("type")
    if kind is None:
        return set()
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if schema.get("nullable"):
        kinds.add("null")
    if "number" in kinds:
        kinds.add("integer")  # an integer is a number: number -> integer narrows, integer -> number widens
    return kinds
