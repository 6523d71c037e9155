"""The OpenAPI 3.1 document of ``/api``, made from the routes themselves.

Every JSON route is declared with ``api_route``: a Starlette ``Route`` that also carries its
``Operation`` — a summary, its parameters, the type of its body and of its answer. Types are
the ``TypedDict``s the code returns (``store/*.py``, ``shapes.py``); msgspec turns them into
JSON Schema (2020-12, the dialect of OpenAPI 3.1), so the document cannot drift from the
code's own declarations. ``document(routes)`` walks the app's routes; a test checks that every
``/api`` route is described, and schemathesis checks every answer against the document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from inspector import __version__
from inspector.shapes import ErrorBody

REF = "#/components/schemas/{name}"
Schema = dict[str, Any]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERRORS = {
    400: "The request is not acceptable: `detail` names the parameter or field.",
    403: "A cross-origin write, or a refused target address.",
    404: "No such request, delivery or replay.",
    421: "The Host header is not one this inspector answers to (DNS-rebinding defence).",
    503: "The store could not answer, or too many clients wait (see Retry-After).",
}


@dataclass(frozen=True)
class Param:
    """A query or path parameter, as the document shows it."""

    name: str
    description: str
    schema: Schema
    where: str = "query"
    required: bool = False


def integer(name: str, description: str, lo: int, hi: int, default: int | None = None) -> Param:
    schema: Schema = {"type": "integer", "minimum": lo, "maximum": hi}
    if default is not None:
        schema["default"] = default
    return Param(name, description, schema)


def number(name: str, description: str, lo: float, hi: float, default: float) -> Param:
    return Param(
        name, description, {"type": "number", "minimum": lo, "maximum": hi, "default": default}
    )


def text(name: str, description: str, **schema: Any) -> Param:
    return Param(name, description, {"type": "string", **schema})


def path(name: str, description: str, schema: Schema) -> Param:
    return Param(name, description, schema, where="path", required=True)


@dataclass(frozen=True)
class Operation:
    """What a route takes and answers. ``answer`` is a type for JSON answers; other media
    (a download, text, a stream) give ``media`` and describe themselves in ``answer_text``."""

    summary: str
    params: Sequence[Param] = ()
    body: Any = None  # the JSON body's type
    answer: Any = None
    status: int = 200
    media: str | tuple[str, ...] = "application/json"  # several: one per format
    answer_text: str = ""
    description: str = ""
    tags: Sequence[str] = field(default_factory=tuple)
    errors: Sequence[int] = ()  # error statuses beyond those the parameters and method imply


class ApiRoute(Route):
    """A ``Route`` that carries its ``Operation``."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: list[str],
        operation: Operation,
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.operation = operation


def api_route(
    path: str, endpoint: Callable[..., Any], method: str, operation: Operation
) -> ApiRoute:
    return ApiRoute(path, endpoint, methods=[method], operation=operation)


def served(app: Starlette) -> dict[str, Any]:
    """The document of ``app``'s routes, made on first use and kept on ``app.state``."""
    found: dict[str, Any] | None = getattr(app.state, "openapi", None)
    if found is None:
        found = document(app.routes)
        app.state.openapi = found
    return found


def document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the described routes among ``routes``."""
    described = [r for r in routes if isinstance(r, ApiRoute)]
    types: list[Any] = [ErrorBody]
    for route in described:
        op = route.operation
        types += [t for t in (op.body, op.answer) if t is not None]
    unique = list(dict.fromkeys(types))
    refs, components = msgspec.json.schema_components(unique, ref_template=REF)
    ref_of = dict(zip(unique, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in described:
        url = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(url, {})[method.lower()] = _operation(route, method, ref_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "webhook-inspector",
            "version": __version__,
            "description": (
                "Capture, verify, misbehave, replay, send: the local webhook inspector's "
                "JSON API. Capture routes (`/h/{endpoint}/...`) accept anything and are not "
                "part of it. Errors are `{error, detail}`."
            ),
        },
        "paths": paths,
        "components": {"schemas": components},
    }


def _operation(route: ApiRoute, method: str, ref_of: dict[Any, Schema]) -> dict[str, Any]:
    op = route.operation
    name = getattr(route.endpoint, "__name__", "operation")
    out: dict[str, Any] = {"operationId": f"{name}_{method.lower()}", "summary": op.summary}
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    if op.params:
        out["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "description": p.description,
                "schema": p.schema,
            }
            for p in op.params
        ]
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref_of[op.body]}},
        }
    media = (op.media,) if isinstance(op.media, str) else op.media
    content: dict[str, Schema] = {}
    for kind in media:
        if op.answer is not None:
            content[kind] = {"schema": ref_of[op.answer]}
        elif kind == "application/json":  # a document of its own (HAR, this one)
            content[kind] = {"schema": {"type": "object", "description": op.answer_text}}
        else:
            content[kind] = {"schema": {"type": "string", "description": op.answer_text}}
    responses: dict[str, Any] = {str(op.status): {"description": op.summary, "content": content}}
    error = {"application/json": {"schema": ref_of[ErrorBody]}}
    for status in _errors(op, method):
        entry: dict[str, Any] = {"description": ERRORS[status], "content": error}
        if status == 503:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}
            }
        responses[str(status)] = entry
    out["responses"] = responses
    return out


def _errors(op: Operation, method: str) -> list[int]:
    statuses = {421, 503, *op.errors}
    if op.params or op.body is not None:
        statuses.add(400)
    if any(p.where == "path" for p in op.params):
        statuses |= {400, 404}
    if method in WRITES:
        statuses.add(403)
    return sorted(statuses)


# -- the reference page ------------------------------------------------------------------------


def type_text(schema: Schema) -> str:
    """A JSON Schema in a few words: ``integer | null``, ``list of ListedRequest``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(type_text(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(type_text(s) for s in schema["prefixItems"]) + "]"
        return "list of " + type_text(schema.get("items", {}))
    if kind == "object" and "additionalProperties" in schema:
        return "object of " + type_text(schema["additionalProperties"])
    if kind is None:
        return "any"
    bounds = [f"{k} {_number(schema[k])}" for k in ("minimum", "maximum") if k in schema]
    return str(kind) + (f" ({', '.join(bounds)})" if bounds else "")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def reference(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The document as the reference page shows it: its operations, then its schemas."""
    operations = []
    for url, methods in doc["paths"].items():
        for method, op in methods.items():
            responses = []
            for status, answer in op["responses"].items():
                for media, content in answer.get("content", {}).items():
                    schema = content.get("schema", {})
                    ref = type_text(schema) if "$ref" in schema else None
                    responses.append(
                        {
                            "status": status,
                            "media": media,
                            "schema": ref,
                            "description": answer["description"],
                        }
                    )
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            operations.append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": url,
                    "summary": op["summary"],
                    "description": op.get("description", ""),
                    "params": [
                        {
                            "name": p["name"],
                            "where": p["in"],
                            "type": type_text(p["schema"]),
                            "description": p["description"],
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": type_text(body["schema"]) if body else None,
                    "responses": responses,
                }
            )
    schemas = []
    for name, schema in sorted(doc["components"]["schemas"].items()):
        required = set(schema.get("required", []))
        schemas.append(
            {
                "name": name,
                "description": schema.get("description", ""),
                "fields": [
                    {"name": field_name, "type": type_text(sub), "required": field_name in required}
                    for field_name, sub in schema.get("properties", {}).items()
                ],
            }
        )
    return operations, schemas
