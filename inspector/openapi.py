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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from inspector import __version__
from inspector.access import OPEN_PATHS
from inspector.shapes import ErrorBody

REF = "#/components/schemas/{name}"
# JSON Schema and OpenAPI objects as msgspec makes them and this module reads them: open-ended
# JSON objects, indexed by the keys the specifications define.
Schema = dict[str, Any]
# A JSON route: what ``api_route`` describes.
Endpoint = Callable[[Request], Awaitable[Response]]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERRORS = {
    400: "The request is not acceptable: `detail` names the parameter or field.",
    401: "The server requires its token (`serve --token`): send `Authorization: Bearer TOKEN`.",
    403: "A cross-origin write, or a refused target address.",
    404: "No such request, delivery or replay (or, for the CA certificate, no local CA).",
    416: "The byte range asked for starts beyond the body (`Content-Range: bytes */SIZE`).",
    421: "The Host header is not one this inspector answers to (DNS-rebinding defence).",
    503: "The store could not answer, or too many clients wait (see Retry-After).",
}


# -- the document's own objects (OpenAPI 3.1), as this module writes and reads them ----------


class Media(TypedDict):
    schema: Schema


class Header(TypedDict):
    description: str
    schema: Schema


class Answer(TypedDict):
    """A response object: what one status carries."""

    description: str
    content: dict[str, Media]
    headers: NotRequired[dict[str, Header]]


class Body(TypedDict):
    required: bool
    content: dict[str, Media]


# ``in`` is a keyword: the functional form names it.
Parameter = TypedDict(
    "Parameter",
    {"name": str, "in": str, "required": bool, "description": str, "schema": Schema},
)


class _Described(TypedDict, total=False):
    """What an operation says of itself when it has it."""

    description: str
    tags: list[str]
    parameters: list[Parameter]
    requestBody: Body


class OperationObject(_Described):
    operationId: str
    summary: str
    responses: dict[str, Answer]


class Info(TypedDict):
    title: str
    version: str
    description: str


class SecurityScheme(TypedDict):
    type: str
    scheme: str
    description: str


class Components(TypedDict):
    schemas: dict[str, Schema]
    securitySchemes: dict[str, SecurityScheme]


class Document(TypedDict):
    """The OpenAPI document ``/api/openapi.json`` serves."""

    openapi: str
    info: Info
    paths: dict[str, dict[str, OperationObject]]  # url -> method -> operation
    components: Components
    security: list[dict[str, list[str]]]  # none, or the bearer token: either will do


SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "The token of `serve --token` (generated when it binds a network address); "
            "without one, no route needs it."
        ),
    }
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


def text(name: str, description: str, **schema: str | int | list[str]) -> Param:
    return Param(name, description, {"type": "string", **schema})


def path(name: str, description: str, schema: Schema) -> Param:
    return Param(name, description, schema, where="path", required=True)


@dataclass(frozen=True)
class Operation:
    """What a route takes and answers. ``answer`` is a type for JSON answers; other media
    (a download, text, a stream) give ``media`` and describe themselves in ``answer_text``."""

    summary: str
    params: Sequence[Param] = ()
    body: type | None = None  # the JSON body's type (a TypedDict)
    answer: type | None = None
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
        endpoint: Endpoint,
        *,
        methods: list[str],
        operation: Operation,
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.operation = operation


def api_route(path: str, endpoint: Endpoint, method: str, operation: Operation) -> ApiRoute:
    return ApiRoute(path, endpoint, methods=[method], operation=operation)


def served(app: Starlette) -> Document:
    """The document of ``app``'s routes, made on first use and kept on ``app.state``."""
    found: Document | None = getattr(app.state, "openapi", None)
    if found is None:
        found = document(app.routes)
        app.state.openapi = found
    return found


def document(routes: Iterable[BaseRoute]) -> Document:
    """The OpenAPI 3.1 document for the described routes among ``routes``."""
    described = [r for r in routes if isinstance(r, ApiRoute)]
    types: list[type] = [ErrorBody]
    for route in described:
        op = route.operation
        types += [t for t in (op.body, op.answer) if t is not None]
    unique = list(dict.fromkeys(types))
    refs, components = msgspec.json.schema_components(unique, ref_template=REF)
    ref_of = dict(zip(unique, refs, strict=True))
    paths: dict[str, dict[str, OperationObject]] = {}
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
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
        # No token unless the server was started with one (or bound to a network address).
        "security": [{}, {"bearer": []}],
    }


def _operation(route: ApiRoute, method: str, ref_of: dict[type, Schema]) -> OperationObject:
    op = route.operation
    name = getattr(route.endpoint, "__name__", "operation")
    parts = _Described()
    if op.description:
        parts["description"] = op.description
    if op.tags:
        parts["tags"] = list(op.tags)
    if op.params:
        parts["parameters"] = [
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
        parts["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref_of[op.body]}},
        }
    media = (op.media,) if isinstance(op.media, str) else op.media
    content: dict[str, Media] = {}
    for kind in media:
        if op.answer is not None:
            content[kind] = {"schema": ref_of[op.answer]}
        elif kind == "application/json":  # a document of its own (HAR, this one)
            content[kind] = {"schema": {"type": "object", "description": op.answer_text}}
        else:
            content[kind] = {"schema": {"type": "string", "description": op.answer_text}}
    responses: dict[str, Answer] = {str(op.status): {"description": op.summary, "content": content}}
    error: dict[str, Media] = {"application/json": {"schema": ref_of[ErrorBody]}}
    for status in _errors(op, method, route.path):
        entry: Answer = {"description": ERRORS[status], "content": error}
        if status == 503:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}
            }
        responses[str(status)] = entry
    return {
        "operationId": f"{name}_{method.lower()}",
        "summary": op.summary,
        **parts,
        "responses": responses,
    }


def _errors(op: Operation, method: str, path: str) -> list[int]:
    statuses = {421, 503, *op.errors}
    if path not in OPEN_PATHS:
        statuses.add(401)
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


class ParamRow(TypedDict):
    name: str
    where: str
    type: str
    description: str


class AnswerRow(TypedDict):
    status: str
    media: str
    schema: str | None  # the named schema, if the answer has one
    description: str


class OperationRow(TypedDict):
    """One operation as the reference page lists it."""

    id: str
    method: str
    path: str
    summary: str
    description: str
    params: list[ParamRow]
    body: str | None
    responses: list[AnswerRow]


class FieldRow(TypedDict):
    name: str
    type: str
    required: bool


class SchemaRow(TypedDict):
    """One named schema as the reference page lists it."""

    name: str
    description: str
    fields: list[FieldRow]


def reference(doc: Document) -> tuple[list[OperationRow], list[SchemaRow]]:
    """The document as the reference page shows it: its operations, then its schemas."""
    operations: list[OperationRow] = []
    for url, methods in doc["paths"].items():
        for method, op in methods.items():
            responses: list[AnswerRow] = []
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
    schemas: list[SchemaRow] = []
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
