"""``--help`` on every command of the CLI, and the export's synopsis in the contract's own words."""

from __future__ import annotations

import argparse

import pytest

from services import cli


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_commands(sub, (*path, name)))
    return found


def test_every_command_and_group_answers_help_with_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _commands(cli.build_parser())
    assert {("sync",), ("worker",), ("export", "transactions"), ("users", "import-authenticator")} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as done:
            cli.main([*command, "--help"])
        assert done.value.code == 0, command
        assert capsys.readouterr().out.startswith(f"usage: python -m services.cli {' '.join(command)}".rstrip())


def test_export_help_shows_the_contract_synopsis(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue writes ``--out FILE [--from YYYY-MM-DD] [--to YYYY-MM-DD]``; help said ``--from START``."""
    with pytest.raises(SystemExit):
        cli.main(["export", "transactions", "--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "--out FILE" in usage and "[--from YYYY-MM-DD] [--to YYYY-MM-DD]" in usage
