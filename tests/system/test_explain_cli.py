"""`mailbot explain` as an admin runs it: a real process, real files, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mailbot.core.explanation import RECORD_KEYS
from mailbot.core.model import Reason
from tests.system.cli_support import run_mailbot

FIXTURES = Path(__file__).parent.parent / "fixtures"
CORPUS_FILES = sorted(
    str(path)
    for path in (FIXTURES / "corpus").rglob("*")
    if path.is_file() and path.name != "SOURCES.md"
)
SKIP_REASONS = {reason.value for reason in Reason}


def _mailbot(*args: str, env_config: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "MAILBOT_CONFIG": env_config or ""}
    return run_mailbot(*args, env=env)


def test_json_over_the_whole_corpus_has_a_line_per_file_and_reasons_from_the_spec() -> None:
    result = _mailbot("explain", "--json", "--tz", "Europe/Berlin", *CORPUS_FILES)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {record["file"] for record in records} == set(CORPUS_FILES)
    for record in records:
        assert tuple(record) == RECORD_KEYS
        if record["outcome"] == "skip":
            assert record["reason"] in SKIP_REASONS
        else:
            assert record["reason"] is None


def test_table_names_the_zone_and_counts_the_outcomes() -> None:
    single = str(FIXTURES / "corpus/eml/comm-central__single-event.eml")
    plain = str(FIXTURES / "corpus/eml/calmailproc__test-0.eml")
    result = _mailbot("explain", "--tz", "America/New_York", single, plain)
    assert result.returncode == 0
    assert "WHEN (America/New_York)" in result.stdout
    assert "no_calendar_part" in result.stdout
    assert "2 decisions: 1 create, 1 skip" in result.stdout


def test_unreadable_file_exits_1_after_explaining_the_others(tmp_path: Path) -> None:
    single = str(FIXTURES / "corpus/eml/comm-central__single-event.eml")
    result = _mailbot("explain", "--json", single, str(tmp_path / "missing.eml"))
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1
    assert "missing.eml" in result.stderr


@pytest.mark.parametrize(
    "args", [("explain",), ("explain", "--tz", "Mars/Olympus", "x.eml"), ("nope",)]
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    assert _mailbot(*args).returncode == 2


def test_tz_defaults_to_the_configured_netsuite_timezone(tmp_path: Path) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text('[netsuite]\ntimezone = "Asia/Tokyo"\n', encoding="utf-8")
    single = str(FIXTURES / "corpus/eml/comm-central__single-event.eml")
    record = json.loads(_mailbot("explain", "--json", "--config", str(config), single).stdout)
    assert record["start"].endswith("+09:00")
    from_env = json.loads(_mailbot("explain", "--json", single, env_config=str(config)).stdout)
    assert from_env["start"] == record["start"]
    assert json.loads(_mailbot("explain", "--json", single).stdout)["start"].endswith("+00:00")


def test_a_bad_configuration_lists_every_problem_and_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text(
        '[netsuite]\ntimezone = "Nowhere/City"\ncolour = 1\n'
        "[limits]\nmax_attendees = -1\n[extra]\n",
        encoding="utf-8",
    )
    result = _mailbot("explain", "--config", str(config), "x.eml")
    assert result.returncode == 78
    for problem in ("Nowhere/City", "netsuite.colour", "limits.max_attendees", "[extra]"):
        assert problem in result.stderr
