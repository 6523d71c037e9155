"""The server stack: which event loop and HTTP parser uvicorn runs on.

``uvicorn[standard]`` brings uvloop (the event loop) and httptools (the HTTP/1.1 parser),
which serve a bare endpoint about three times as fast as asyncio and h11 on the same machine.
Where a platform has no wheel for them (uvloop has none for Windows), the install still
succeeds and the inspector runs on asyncio and h11. ``serve`` decides once, passes its choice
to uvicorn explicitly (so what it prints is what runs) and says which it is.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass

from uvicorn.protocols.http.h11_impl import H11Protocol

FAST_HINT = "pip install 'uvicorn[standard]' for uvloop and httptools"


@dataclass(frozen=True)
class Stack:
    """An event loop and an HTTP parser, by uvicorn's names for them."""

    loop: str  # "uvloop" | "asyncio"
    http: str  # "httptools" | "h11"

    @property
    def fast(self) -> bool:
        return self.loop == "uvloop" and self.http == "httptools"

    def protocol(self) -> type[asyncio.Protocol]:
        """The HTTP protocol class to give uvicorn (``Config(http=...)``)."""
        if self.http == "httptools":
            # Imported here, not at the top: it imports httptools, which may not be installed.
            from inspector.protocol import HttpToolsWithH11

            return HttpToolsWithH11
        return H11Protocol

    def describe(self) -> str:
        """One line for the banner: ``uvloop + httptools`` and, if slower, what to install."""
        line = f"{self.loop} + {self.http}"
        return line if self.fast else f"{line}   (slower: {FAST_HINT})"


def importable(module: str) -> bool:
    """Whether ``module`` imports here (a missing wheel, or a broken build, says no)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def choose() -> Stack:
    """The fastest stack this interpreter can run: each fast part where it imports."""
    return Stack(
        loop="uvloop" if importable("uvloop") else "asyncio",
        http="httptools" if importable("httptools") else "h11",
    )
