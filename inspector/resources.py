"""Where ``templates/`` and ``static/`` are: inside the installed package (wheel), or at the
top of a checkout (editable install, running from source)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{name}/ not found beside {_PACKAGE} or in it")
