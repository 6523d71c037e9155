"""Capture helpers without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inspector.capture import endpoint_from_path, header_value, utc_timestamp
from inspector.errors import BadRequest


@pytest.mark.parametrize("ts", [0.0, 1.5, 1764315000.123456, 1764315000.9999996, 2e9 + 0.000001])
def test_utc_timestamp_matches_datetime(ts: float) -> None:
    text = utc_timestamp(ts)
    assert len(text) == 27 and text.endswith("Z")
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert abs(parsed - ts) <= 1e-6


def test_utc_timestamp_is_monotonic_across_a_second_boundary() -> None:
    stamps = [utc_timestamp(1764315000 + i / 10) for i in range(25)]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    ("path", "name"), [("/h/a", "a"), ("/h/a.b_c-d/x/y", "a.b_c-d"), ("/h/" + "x" * 64, "x" * 64)]
)
def test_endpoint_from_path(path: str, name: str) -> None:
    assert endpoint_from_path(path) == name


@pytest.mark.parametrize("path", ["/h/", "/h//x", "/h/a b", "/h/é", "/h/" + "x" * 65])
def test_invalid_endpoint_names(path: str) -> None:
    with pytest.raises(BadRequest, match="1 to 64 characters"):
        endpoint_from_path(path)


def test_header_value_is_case_insensitive_and_first_wins() -> None:
    headers = [("X-A", "1"), ("x-a", "2")]
    assert header_value(headers, "x-a") == "1"
    assert header_value(headers, "x-b") is None
