"""Settings come from one table: ``Settings``' fields give ``serve`` its flags, defaults, help
and environment variables, and the README's options table must say the same."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path

import pytest

from inspector import settings
from inspector.cli import build_parser, main
from inspector.cli.options import settings_from
from inspector.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def subparser(name: str) -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found: argparse.ArgumentParser = action.choices[name]
    return found


def serve_options() -> dict[str, argparse.Action]:
    return {
        a.option_strings[0]: a
        for a in subparser("serve")._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction)
    }


def cells(line: str) -> list[str]:
    """A markdown table row's cells (``\\|`` is a pipe inside a cell)."""
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [part.strip().replace("\\|", "|") for part in parts]


def readme_options() -> list[list[str]]:
    """The rows of the README's ``serve`` options table."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| option | default | environment | what it does |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    return rows


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser reads these; the defaults under test are the ones without them."""
    for _, option in settings.options():
        if option.env:
            monkeypatch.delenv(option.env, raising=False)


def test_every_serve_option_is_a_setting_and_back() -> None:
    table = {option.flag: f for f, option in settings.options()}
    assert list(serve_options()) == list(table)
    for flag, action in serve_options().items():
        f = table[flag]
        assert action.dest == f.name
        assert action.default == (None if isinstance(f.default, tuple) else settings.default_of(f))
        assert str(f.metadata["help"]).removesuffix(".") in (action.help or "")
    # Settings that are no flag (tests set them) still have help.
    assert all(f.metadata["help"] for f in fields(Settings))


def test_the_readme_options_table_agrees_with_the_parser() -> None:
    rows = readme_options()
    documented = {row[0].strip("`").split()[0]: row for row in rows}
    assert list(documented) == list(serve_options()), "README options table: names or order"
    by_flag = {option.flag: (f, option) for f, option in settings.options()}
    for flag, action in serve_options().items():
        _, default, env, meaning = documented[flag]
        f, option = by_flag[flag]
        if option.computed is not None:
            if f.name == "data_dir":
                assert action.default == settings.default_data_dir()
            expected = option.computed
        else:
            value = () if action.default is None and option.repeat else action.default
            expected = f"`{settings.shown_default(f, value)}`" if value not in (None, ()) else ""
            if isinstance(value, bool):
                expected = settings.shown_default(f, value) or ""
        assert default == expected, f"README default of {flag}"
        assert env == (f"`{option.env}`" if option.env else ""), f"README variable of {flag}"
        assert meaning.replace("`", "") == f.metadata["help"], f"README text of {flag}"


def test_the_readme_command_table_names_real_commands_and_flags() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Command line") : text.index("**`serve` options.**")]
    rows = [cells(line) for line in section.splitlines() if line.startswith("| `")]
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    named = [row[0].strip("`").split()[0] for row in rows]
    assert named == list(action.choices), "README command table: one row per command, in order"
    for row in rows:
        parser = action.choices[row[0].strip("`").split()[0]]
        known = {s for a in parser._actions for s in a.option_strings}
        for flag in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", row[0]):
            for part in flag.split("/"):  # --enforce/--no-enforce
                assert part in known, f"README names {part} for {row[0].split()[0]}"


def test_serve_flags_and_variables_make_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = build_parser()
    plain = settings_from(parser.parse_args(["serve"]))
    assert plain.port == 8765 and plain.secret is None and plain.allow_hosts == ()
    assert plain.data_dir == settings.default_data_dir() and plain.log_level == "warning"
    monkeypatch.setenv("WEBHOOK_SECRET", "from-env")
    monkeypatch.setenv("WEBHOOK_INSPECTOR_DATA", str(tmp_path / "env"))
    args = build_parser().parse_args(
        ["serve", "--port", "0", "--allow-host", "a.test", "--allow-host", "b.test",
         "--max-body", "10", "--access-log", "--forward-mode", "proxy"]
    )  # fmt: skip
    made = settings_from(args)
    assert (made.port, made.allow_hosts, made.max_body) == (0, ("a.test", "b.test"), 10)
    assert made.access_log and made.forward_mode == "proxy"
    assert made.secret == "from-env" and made.data_dir == tmp_path / "env"
    given = ["serve", "--secret", "s", "--data-dir", "~"]
    flagged = settings_from(build_parser().parse_args(given))
    assert flagged.secret == "s" and flagged.data_dir == Path.home()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "x"], "expected an integer, got 'x'"),
        (["--retention", "0"], "must be at least 1, got 0"),
        (["--max-delay", "inf"], "must be a number above 0"),
        (["--log-level", "loud"], "invalid choice"),
    ],
)
def test_bad_serve_values_name_the_flag_and_the_rule(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err and message in err
