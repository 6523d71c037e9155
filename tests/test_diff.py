"""The diff between two requests, as pure logic: no store, no HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector import diff
from inspector.cli import main
from inspector.diff import Side, byte_range
from tests.conftest import LiveInspector

EVENT = {
    "event": "member.joined",
    "timestamp": "2025-01-15T08:30:00Z",
    "data": {"channelId": "C1", "member": {"userId": "U1"}},
}


def side(body: bytes = b"", **fields: Any) -> Side:
    base: dict[str, Any] = {
        "label": "#1",
        "method": "POST",
        "path": "/h/shop",
        "query": "",
        "headers": [("content-type", "application/json")],
        "body": body,
        "content_type": "application/json",
    }
    return Side(**{**base, **fields})


def dumps(value: Any, **options: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, **options).encode()


def test_the_same_request_is_equal() -> None:
    a = side(dumps(EVENT))
    result = diff.diff(a, a)
    assert result["equal"] and result["body"]["equal"] and result["body"]["mode"] == "same"
    assert result["line"] == [] and result["headers"]["changes"] == []
    assert result["body"]["bytes"] is None


def test_request_line_and_query_by_name() -> None:
    a = side(query="x=1&tag=a&tag=b&same=1", path="/h/shop/orders")
    b = side(method="PUT", query="same=1&tag=b&y=", path="/h/shop")
    result = diff.diff(a, b)
    line = {c["where"]: (c["kind"], c["a"], c["b"]) for c in result["line"]}
    assert line["method"] == ("changed", "POST", "PUT")
    assert line["path"] == ("changed", "/h/shop/orders", "/h/shop")
    assert line["query"][0] == "changed"
    query = {c["where"]: (c["kind"], c["a"], c["b"]) for c in result["query"]}
    assert query == {
        "x": ("removed", "1", None),
        "tag": ("changed", "a\nb", "b"),
        "y": ("added", None, ""),
    }
    assert not result["equal"]


def test_headers_added_removed_changed_and_order() -> None:
    a = side(headers=[("Host", "a"), ("x-sig", "1"), ("x-id", "7"), ("accept", "*/*")])
    b = side(headers=[("host", "a"), ("x-id", "7"), ("x-sig", "2"), ("x-id", "8"), ("new", "n")])
    headers = diff.diff(a, b)["headers"]
    changes = {c["where"]: (c["kind"], c["a"], c["b"]) for c in headers["changes"]}
    assert changes == {
        "x-sig": ("changed", "1", "2"),
        "x-id": ("changed", "7", "7\n8"),  # duplicates kept, in order
        "accept": ("removed", "*/*", None),
        "new": ("added", None, "n"),
    }
    assert headers["order_changed"]  # x-sig came before x-id in A, after it in B
    assert headers["order_a"] == ["host", "x-sig", "x-id", "accept"]
    # Only the order differs: still a difference.
    swapped = diff.diff(
        side(headers=[("a", "1"), ("b", "2")]), side(headers=[("b", "2"), ("a", "1")])
    )
    assert swapped["headers"]["changes"] == [] and swapped["headers"]["order_changed"]
    assert not swapped["equal"]


def test_json_bodies_by_path() -> None:
    a = {"event": "x", "data": {"id": 1, "tags": ["a", "b"], "old": True, "odd key": 1}}
    b = {"event": "x", "data": {"id": 2, "tags": ["a"], "new": None, "odd key": 1}}
    body = diff.diff(side(dumps(a)), side(dumps(b)))["body"]
    assert body["mode"] == "json" and not body["equal"]
    changes = {c["where"]: (c["kind"], c["a"], c["b"]) for c in body["changes"]}
    assert changes == {
        "$.data.id": ("changed", "1", "2"),
        "$.data.tags[1]": ("removed", '"b"', None),
        "$.data.old": ("removed", "true", None),
        "$.data.new": ("added", None, "null"),
    }


def test_json_types_are_strict_but_numbers_are_numbers() -> None:
    body = diff.diff(side(b'{"a": true, "b": 1.0}'), side(b'{"a": 1, "b": 1}'))["body"]
    assert [(c["where"], c["a"], c["b"]) for c in body["changes"]] == [("$.a", "true", "1")]


def test_key_order_is_a_change_unless_ignored() -> None:
    a, b = dumps(EVENT), dumps(dict(reversed(EVENT.items())))
    body = diff.diff(side(a), side(b))["body"]
    assert [(c["where"], c["kind"]) for c in body["changes"]] == [("$", "moved")]
    assert body["changes"][0]["a"] == "event, timestamp, data"
    ignoring = diff.diff(side(a), side(b), ignore_key_order=True)
    assert ignoring["ignore_key_order"] and ignoring["body"]["changes"] == []
    assert ignoring["body"]["note"] == diff.SAME_JSON and not ignoring["body"]["equal"]


def test_the_same_json_in_other_bytes_is_named() -> None:
    # What a re-serializing sender does: the data is the same, the bytes (and the HMAC) not.
    body = diff.diff(side(dumps(EVENT, indent=2)), side(dumps(EVENT, separators=(",", ":"))))
    assert body["body"]["note"] == diff.SAME_JSON and body["body"]["changes"] == []
    assert body["body"]["bytes"] is not None and body["body"]["bytes"]["offset"] == 1


def test_form_bodies_by_field() -> None:
    form = [("content-type", "application/x-www-form-urlencoded")]
    kind = "application/x-www-form-urlencoded"
    a = side(b"a=1&b=hello+world&c=3", headers=form, content_type=kind)
    b = side(b"b=hello%20world&a=2", headers=form, content_type=kind)
    body = diff.diff(a, b)["body"]
    assert body["mode"] == "form"
    changes = {c["where"]: (c["kind"], c["a"], c["b"]) for c in body["changes"]}
    assert changes == {
        "field order": ("moved", "a, b, c", "b, a"),
        "a": ("changed", "1", "2"),
        "c": ("removed", "3", None),
    }
    same = diff.diff(a, side(b"a=1&b=hello%20world&c=3", headers=form, content_type=kind))
    assert same["body"]["note"] == diff.SAME_FORM


def test_text_by_line_and_binary_by_bytes() -> None:
    a = side(b"one\ntwo\nthree\n", content_type="text/plain")
    b = side(b"one\n2\nthree\nfour\n", content_type="text/plain")
    body = diff.diff(a, b)["body"]
    assert body["mode"] == "text"
    assert [(c["where"], c["kind"], c["a"], c["b"]) for c in body["changes"]] == [
        ("line 2", "changed", "two\n", "2\n"),
        ("line 4 of B", "added", None, "four\n"),
    ]
    binary = diff.diff(side(b"\x00\xff\x01\x02tail"), side(b"\x00\xfe\x01\x02\x03tail"))["body"]
    assert binary["mode"] == "bytes" and binary["changes"] == []
    assert binary["bytes"] == {
        "offset": 1,
        "a_end": 4,
        "b_end": 5,
        "a_hex": "ff 01 02 74 61 69 6c",
        "b_hex": "fe 01 02 03 74 61 69 6c",
    }


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_byte_range_brackets_the_difference(a: bytes, b: bytes) -> None:
    found = byte_range(a, b)
    start, a_end, b_end = found["offset"], found["a_end"], found["b_end"]
    assert a[:start] == b[:start] and a[a_end:] == b[b_end:]
    assert start <= a_end and start <= b_end
    assert (a == b) == (a_end == start == b_end)


def test_big_bodies_are_bounded_and_say_how_they_were_compared() -> None:
    big = dumps({"items": [{"n": n, "text": "大家早安!"} for n in range(60_000)]})
    assert len(big) > diff.MAX_PARSED
    body = diff.diff(side(big), side(big.replace(b'"n": 5,', b'"n": 6,')))["body"]
    assert body["mode"] == "bytes" and "compared byte by byte" in (body["note"] or "")
    assert body["bytes"] is not None and body["bytes"]["a_end"] - body["bytes"]["offset"] == 1
    many = diff.diff(side(dumps(list(range(5000)))), side(dumps(list(range(1, 5001)))))["body"]
    assert len(many["changes"]) == diff.MAX_CHANGES and many["more"] == 5000 - diff.MAX_CHANGES
    lines = b"".join(b"%d\n" % n for n in range(diff.MAX_LINES + 1))
    text = diff.diff(side(lines, content_type="text/plain"), side(lines + b"x"))["body"]
    assert text["mode"] == "bytes" and "lines is compared byte by byte" in (text["note"] or "")
    long_value = diff.diff(side(dumps({"a": "x" * 5000})), side(dumps({"a": "y"})))["body"]
    shown = long_value["changes"][0]["a"] or ""
    assert len(shown) == diff.MAX_VALUE and shown.endswith("…")


def test_deep_json_is_compared_whole_past_the_depth_limit() -> None:
    deep_a, deep_b = b"[" * 500 + b"1" + b"]" * 500, b"[" * 500 + b"2" + b"]" * 500
    body = diff.diff(side(deep_a), side(deep_b))["body"]
    assert body["mode"] == "json" and len(body["changes"]) == 1
    assert body["changes"][0]["where"] == "$" + "[0]" * diff.MAX_DEPTH


# -- over HTTP and in the terminal -----------------------------------------------------------


@pytest.mark.live
@pytest.mark.backends
def test_the_api_diffs_captures_pairs_and_replays(live: LiveInspector) -> None:
    with live.client() as client:
        first = dumps(EVENT, indent=2)
        retry = dumps(dict(reversed(EVENT.items())), indent=2)
        client.post("/h/shop?status=500", content=first, headers={"x-try": "1"})
        client.post("/h/shop", content=retry, headers={"x-try": "2"})
        a, b = (it["id"] for it in reversed(client.get("/api/requests").json()["requests"]))
        assert client.get(f"/api/requests/{b}/pairs").json() == {
            "previous_attempt": a,
            "previous": a,
        }
        assert client.get(f"/api/requests/{a}/pairs").json() == {
            "previous_attempt": None,
            "previous": None,
        }
        result = client.get(f"/api/requests/{a}/diff/{b}").json()
        assert (result["a"], result["b"]) == (f"#{a}", f"#{b}")
        assert [(c["where"], c["a"], c["b"]) for c in result["line"]] == [
            ("query", "status=500", None)
        ]
        assert {"where": "x-try", "kind": "changed", "a": "1", "b": "2"} in result["headers"][
            "changes"
        ]
        assert [c["kind"] for c in result["body"]["changes"]] == ["moved"]
        ignoring = client.get(f"/api/requests/{a}/diff/{b}?ignore_key_order=true").json()
        assert ignoring["body"]["note"] == diff.SAME_JSON

        # A replay against its original: what was sent, edited, elsewhere.
        target = f"{live.url}/h/elsewhere"
        sent = client.post(
            f"/api/requests/{b}/replay",
            json={"url": target, "headers": {"x-try": "3"}, "body_text": '{"event":"x"}'},
        ).json()
        replayed = client.get(f"/api/replays/{sent['id']}/diff").json()
        assert replayed["a"] == f"#{b}" and replayed["b"] == f"replay #{sent['id']} of #{b}"
        assert ("path", "/h/shop", "/h/elsewhere") in [
            (c["where"], c["a"], c["b"]) for c in replayed["line"]
        ]
        assert {"where": "x-try", "kind": "changed", "a": "2", "b": "3"} in replayed["headers"][
            "changes"
        ]
        assert replayed["body"]["mode"] == "json"
        assert ("$.data", "removed") in [
            (c["where"], c["kind"]) for c in replayed["body"]["changes"]
        ]

        missing = client.get(f"/api/requests/{a}/diff/99999")
        assert missing.status_code == 404 and "99999" in missing.json()["detail"]
        assert client.get("/api/replays/99999/diff").status_code == 404
        assert client.get(f"/api/requests/{a}/diff/x").status_code == 404
        bad = client.get(f"/api/requests/{a}/diff/{b}?ignore_key_order=maybe")
        assert bad.status_code == 400 and "ignore_key_order" in bad.json()["detail"]


@pytest.mark.live
@pytest.mark.backends
def test_the_cli_diffs_two_captures_or_one_with_its_partner(
    live: LiveInspector, capsys: pytest.CaptureFixture[str]
) -> None:
    with live.client() as client:
        client.post("/h/cli", content=b"one\ntwo\n", headers={"x-evil": "\x1b[31mred"})
        client.post("/h/cli", content=b"one\n2\n")
        a, b = (it["id"] for it in reversed(client.get("/api/requests").json()["requests"]))
    data = ["--data-dir", str(live.settings.data_dir)]
    assert main(["diff", str(a), str(b), *data]) == 0
    out = capsys.readouterr().out
    assert f"diff #{a} -> #{b}" in out
    assert "  ~ line 2: two\\n  ->  2\\n" in out
    assert "  - x-evil: \\x1b[31mred" in out and "\x1b" not in out  # inert
    assert main(["diff", str(b), *data]) == 0  # with the capture before it
    assert f"diff #{a} -> #{b}" in capsys.readouterr().out
    assert main(["diff", str(a), str(b), "--json", *data]) == 0
    assert json.loads(capsys.readouterr().out)["body"]["mode"] == "text"
    assert main(["diff", str(a), *data]) == 2
    assert "is the first on its endpoint" in capsys.readouterr().err
    assert main(["diff", str(a), "99999", *data]) == 2
    assert "No request 99999" in capsys.readouterr().err
