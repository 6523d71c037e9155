from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.errors import BadRequest, FaultParamError
from inspector.faults import (
    DEFAULT_CONTENT_TYPE,
    PARAMS,
    ResponsePlan,
    build_plan,
    decide,
    parse_query,
    parse_rules,
)

# -- parsing -------------------------------------------------------------------------------

EVERY_QUERY = (
    "status=201&body=hello&content_type=application/json&delay=0.5&fail=2"
    "&fail_status=503&rate=0.25&seed=abc&retry_after=30&drop=1"
)
EVERY_VALUE = {
    "status": 201,
    "body": "hello",
    "content_type": "application/json",
    "delay": 0.5,
    "fail": 2,
    "fail_status": 503,
    "rate": 0.25,
    "seed": "abc",
    "retry_after": 30,
    "drop": True,
}


def test_params_lists_the_vocabulary() -> None:
    assert set(PARAMS) == set(EVERY_VALUE)


def test_parse_query_every_parameter() -> None:
    assert parse_query(EVERY_QUERY) == EVERY_VALUE


def test_parse_rules_every_parameter() -> None:
    assert parse_rules(EVERY_VALUE) == EVERY_VALUE


def test_parse_rules_accepts_numbers_as_strings_and_floats() -> None:
    rules = {
        "status": "201",
        "delay": "3",
        "fail": 2.0,
        "rate": "0.5",
        "retry_after": "10",
        "seed": 42,
        "drop": "yes",
    }
    assert parse_rules(rules) == {
        "status": 201,
        "delay": 3.0,
        "fail": 2,
        "rate": 0.5,
        "retry_after": 10,
        "seed": "42",
        "drop": True,
    }


def test_parse_rules_null_means_unset() -> None:
    assert parse_rules({"fail": None, "delay": 1}) == {"delay": 1.0}


@pytest.mark.parametrize("query", ["", "a=1", "a=1&b=2&token=x%20y", "Fail=2", "failure=3"])
def test_parse_query_ignores_sender_params(query: str) -> None:
    assert parse_query(query) == {}


def test_parse_query_keeps_only_fault_params() -> None:
    assert parse_query("a=1&fail=2&delay=0.5&sig=zzz") == {"fail": 2, "delay": 0.5}


def test_parse_query_last_repeat_wins() -> None:
    assert parse_query("fail=1&fail=3") == {"fail": 3}


def test_parse_query_decodes_percent_and_plus() -> None:
    parsed = parse_query("body=h%C3%A9llo+world&content_type=application%2Fjson&%73tatus=202")
    assert parsed == {"body": "héllo world", "content_type": "application/json", "status": 202}


def test_parse_query_raw_utf8_received_as_latin1() -> None:
    raw = "body=héllo".encode().decode("latin-1")  # how ASGI hands over a raw UTF-8 query
    assert parse_query(raw) == {"body": "héllo"}


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("TRUE", True), ("no", False)])
def test_drop_words(value: str, expected: bool) -> None:
    assert parse_query(f"drop={value}") == {"drop": expected}


def test_empty_body_and_zero_values_are_allowed() -> None:
    assert parse_query("body=&delay=0&fail=0&rate=0&retry_after=0") == {
        "body": "",
        "delay": 0.0,
        "fail": 0,
        "rate": 0.0,
        "retry_after": 0,
    }


def test_max_delay_is_configurable() -> None:
    assert parse_query("delay=600") == {"delay": 600.0}
    assert parse_query("delay=5", max_delay=5) == {"delay": 5.0}
    with pytest.raises(FaultParamError, match=r"between 0 and 5, got '5.5'"):
        parse_query("delay=5.5", max_delay=5)


INVALID_QUERIES = [
    ("status=abc", "status", "between 100 and 599"),
    ("status=99", "status", "between 100 and 599"),
    ("status=600", "status", "between 100 and 599"),
    ("status=200.5", "status", "between 100 and 599"),
    ("fail_status=42", "fail_status", "between 100 and 599"),
    ("delay=-1", "delay", "between 0 and 600"),
    ("delay=nan", "delay", "between 0 and 600"),
    ("delay=inf", "delay", "between 0 and 600"),
    ("delay=1e999", "delay", "between 0 and 600"),
    ("delay=600.5", "delay", "between 0 and 600"),
    ("delay=", "delay", "between 0 and 600"),
    ("rate=2", "rate", "between 0 and 1"),
    ("rate=-0.1", "rate", "between 0 and 1"),
    ("fail=-1", "fail", "between 0 and 1000"),
    ("fail=1001", "fail", "between 0 and 1000"),
    ("fail=x", "fail", "between 0 and 1000"),
    ("fail=1_0", "fail", "between 0 and 1000"),
    ("drop=maybe", "drop", "one of 1, 0, true, false, yes, no"),
    ("retry_after=-5", "retry_after", "between 0 and 86400"),
    ("seed=" + "s" * 101, "seed", "at most 100 characters"),
    ("content_type=text/plain%0D%0AX-Evil:%201", "content_type", "visible ASCII"),
    ("content_type=", "content_type", "visible ASCII"),
]


@pytest.mark.parametrize(("query", "param", "allowed"), INVALID_QUERIES)
def test_invalid_query_values(query: str, param: str, allowed: str) -> None:
    with pytest.raises(FaultParamError) as caught:
        parse_query("a=1&" + query)
    assert caught.value.param == param
    assert str(caught.value).startswith(f"{param}: must be ")
    assert allowed in str(caught.value)
    assert caught.value.status == 400


def test_invalid_message_quotes_the_value() -> None:
    with pytest.raises(FaultParamError) as caught:
        parse_query("delay=-1")
    assert str(caught.value) == "delay: must be a number of seconds between 0 and 600, got '-1'"


@pytest.mark.parametrize(
    ("rules", "param"),
    [
        ({"status": True}, "status"),
        ({"status": 600}, "status"),
        ({"delay": float("nan")}, "delay"),
        ({"delay": [1]}, "delay"),
        ({"fail": 1.5}, "fail"),
        ({"rate": "2"}, "rate"),
        ({"drop": 2}, "drop"),
        ({"body": 5}, "body"),
        ({"body": "\ud800"}, "body"),
        ({"seed": "x" * 101}, "seed"),
        ({"retry_after": -5}, "retry_after"),
    ],
)
def test_invalid_rule_values(rules: dict[str, object], param: str) -> None:
    with pytest.raises(FaultParamError) as caught:
        parse_rules(rules)
    assert caught.value.param == param


def test_unknown_rule_keys_are_rejected_by_name() -> None:
    with pytest.raises(BadRequest, match=r"'faill'.*'sleep'") as caught:
        parse_rules({"fail": 1, "sleep": 3, "faill": 2})
    assert not isinstance(caught.value, FaultParamError)


def test_rules_must_be_an_object() -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        parse_rules([1, 2])  # type: ignore[arg-type]


# -- plans ---------------------------------------------------------------------------------


def test_default_plan() -> None:
    plan = build_plan(None, parse_query("a=1"))
    assert plan == ResponsePlan()
    assert plan.is_default()
    assert plan.to_dict() == {}


def test_to_dict_has_only_set_fields() -> None:
    plan = build_plan(None, parse_query("fail=2&delay=3"))
    assert not plan.is_default()
    assert plan.to_dict() == {"fail": 2, "delay": 3.0}
    assert build_plan(plan.to_dict(), None) == plan


def test_query_wins_over_rules_per_field() -> None:
    rules = parse_rules({"fail": 2, "delay": 3, "fail_status": 503})
    query = parse_query("delay=0.5&status=202")
    plan = build_plan(rules, query)
    assert plan == ResponsePlan(fail=2, delay=0.5, fail_status=503, status=202)


def test_query_zero_switches_off_a_rule() -> None:
    assert build_plan({"fail": 2}, parse_query("fail=0")).fail == 0


# -- decide --------------------------------------------------------------------------------


def test_default_answer_is_200_ok() -> None:
    outcome = decide(ResponsePlan(), attempt=1, event_key="k")
    assert (outcome.status, outcome.body, outcome.content_type) == (
        200,
        b"OK",
        DEFAULT_CONTENT_TYPE,
    )
    assert outcome.headers == []
    assert not outcome.failed and not outcome.drop and outcome.delay == 0.0


def test_custom_answer() -> None:
    plan = ResponsePlan(status=202, body='{"ok":true}', content_type="application/json")
    outcome = decide(plan, attempt=1, event_key="k")
    assert (outcome.status, outcome.body) == (202, b'{"ok":true}')
    assert outcome.content_type == "application/json"


def test_fail_then_succeed() -> None:
    plan = ResponsePlan(fail=2, body="done")
    outcomes = [decide(plan, attempt=n, event_key="evt") for n in (1, 2, 3)]
    assert [o.status for o in outcomes] == [500, 500, 200]
    assert [o.failed for o in outcomes] == [True, True, False]
    assert outcomes[0].body == b"Simulated failure (attempt 1 of fail=2)"
    assert outcomes[2].body == b"done"
    other = decide(ResponsePlan(fail=0), attempt=1, event_key="evt")
    assert (other.status, other.failed) == (200, False)


def test_fail_status_is_used() -> None:
    assert decide(ResponsePlan(fail=1, fail_status=503), attempt=1, event_key="k").status == 503


def test_retry_after_only_on_failing_answers() -> None:
    plan = ResponsePlan(fail=1, retry_after=30)
    assert decide(plan, attempt=1, event_key="k").headers == [("Retry-After", "30")]
    assert decide(plan, attempt=2, event_key="k").headers == []


def test_retry_after_with_an_explicit_error_status() -> None:
    plan = ResponsePlan(status=429, retry_after=10)
    outcome = decide(plan, attempt=1, event_key="k")
    assert (outcome.status, outcome.headers, outcome.failed) == (
        429,
        [("Retry-After", "10")],
        False,
    )


def test_delay_applies_to_every_answer() -> None:
    plan = ResponsePlan(fail=1, delay=2.5)
    assert decide(plan, attempt=1, event_key="k").delay == 2.5
    assert decide(plan, attempt=2, event_key="k").delay == 2.5


def test_drop_wins_over_fail() -> None:
    outcome = decide(ResponsePlan(drop=True, fail=5, delay=1.0), attempt=1, event_key="k")
    assert outcome.drop and not outcome.failed
    assert (outcome.status, outcome.body, outcome.delay) == (0, b"", 1.0)


def _failures(plan: ResponsePlan, keys: int) -> list[bool]:
    return [decide(plan, attempt=1, event_key=f"evt_{i}").failed for i in range(keys)]


def test_seeded_rate_is_reproducible() -> None:
    plan = ResponsePlan(rate=0.5, seed="s1")
    assert _failures(plan, 200) == _failures(ResponsePlan(rate=0.5, seed="s1"), 200)
    assert _failures(plan, 200) != _failures(ResponsePlan(rate=0.5, seed="s2"), 200)


def test_seeded_rate_depends_on_attempt() -> None:
    plan = ResponsePlan(rate=0.5, seed="s")
    runs = [[decide(plan, attempt=n, event_key="k").failed for n in range(1, 41)]]
    runs.append([decide(plan, attempt=n, event_key="k").failed for n in range(1, 41)])
    assert runs[0] == runs[1]
    assert 0 < sum(runs[0]) < 40


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_seeded_rate_matches_probability(rate: float) -> None:
    share = sum(_failures(ResponsePlan(rate=rate, seed="fixed"), 2000)) / 2000
    assert abs(share - rate) < 0.05


def test_unseeded_rate_extremes() -> None:
    assert not any(_failures(ResponsePlan(rate=0.0), 200))
    assert all(_failures(ResponsePlan(rate=1.0), 200))
    assert all(_failures(ResponsePlan(rate=1.0, seed="x"), 200))


def test_rate_failure_answer() -> None:
    outcome = decide(
        ResponsePlan(rate=1.0, fail_status=502, retry_after=5), attempt=3, event_key="k"
    )
    assert outcome.status == 502 and outcome.failed
    assert outcome.body == b"Simulated failure (attempt 3, rate=1)"
    assert outcome.headers == [("Retry-After", "5")]


def test_rate_applies_after_fail_attempts() -> None:
    plan = ResponsePlan(fail=1, rate=1.0)
    assert decide(plan, attempt=2, event_key="k").failed


# -- properties ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0xFF)))
def test_parse_query_only_raises_fault_param_error(query: str) -> None:
    try:
        parsed = parse_query(query)
    except FaultParamError:
        return
    assert set(parsed) <= set(PARAMS)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        ResponsePlan,
        status=st.none() | st.integers(100, 599),
        body=st.none() | st.text(alphabet=st.characters(codec="utf-8")),
        delay=st.floats(0, 600),
        fail=st.integers(0, 1000),
        fail_status=st.integers(100, 599),
        rate=st.floats(0, 1),
        seed=st.none() | st.text(max_size=100),
        retry_after=st.none() | st.integers(0, 86400),
        drop=st.booleans(),
    ),
    st.integers(1, 2000),
    st.text(),
)
def test_decide_never_raises_for_a_valid_plan(plan: ResponsePlan, attempt: int, key: str) -> None:
    outcome = decide(plan, attempt=attempt, event_key=key)
    assert outcome.drop or 100 <= outcome.status <= 599
