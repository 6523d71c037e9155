"""JSON as a type: what ``json.loads`` can hand back and what ``json.dumps`` can write.

Untrusted input (a request body, an imported file, a settings body) is read as ``JSONValue``
or ``object`` and narrowed with ``isinstance`` before use; known shapes get a ``TypedDict``.

msgspec (which turns the API's ``TypedDict``s into JSON Schema in ``openapi.py``) cannot
follow a recursive alias, so at run time the alias is "any JSON value" for it; mypy sees the
recursive type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeAlias

import msgspec

if TYPE_CHECKING:
    JSONValue: TypeAlias = (
        "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
    )
else:
    JSONValue = Annotated[object, msgspec.Meta(description="any JSON value")]

# An object, as a JSON body or a JSON column decodes to.
JSONObject: TypeAlias = dict[str, JSONValue]
