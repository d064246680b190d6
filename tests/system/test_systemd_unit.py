"""systemd/mailbot.service as systemd reads it: verified, rated, and kept in line with the code.

``systemd-analyze`` comes with Debian's ``systemd`` package (``make test`` installs it); it
runs offline here, without systemd as PID 1.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.settings import SECRET_NAMES

ROOT = Path(__file__).resolve().parent.parent.parent
UNIT = ROOT / "systemd" / "mailbot.service"
OPERATIONS = ROOT / "docs" / "operations.md"
MAX_EXPOSURE = 2.0
EXPOSURE = re.compile(r"Overall exposure level for mailbot\.service: (\d+\.\d+)")

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package: systemd)",
)


def directives() -> list[tuple[str, str]]:
    return [
        (name.strip(), value.strip())
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "["))
        for name, _, value in [line.partition("=")]
    ]


def security_report(unit: Path) -> str:
    finished = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


@needs_systemd_analyze
def test_the_exposure_is_at_most_2() -> None:
    found = EXPOSURE.search(security_report(UNIT))
    assert found, "no overall exposure level in systemd-analyze's output"
    assert float(found.group(1)) <= MAX_EXPOSURE


@needs_systemd_analyze
def test_the_documented_rating_is_the_current_one() -> None:
    documented = EXPOSURE.search(OPERATIONS.read_text(encoding="utf-8"))
    current = EXPOSURE.search(security_report(UNIT))
    assert documented and current
    assert documented.group(1) == current.group(1), "update the output in docs/operations.md"


@needs_systemd_analyze
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` with ExecStart pointed at this checkout's mailbot."""
    installed = Path(sys.executable).parent / "mailbot"
    if not installed.exists():
        pytest.skip(f"no mailbot script next to {sys.executable}")
    unit = tmp_path / "mailbot.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace("/opt/mailbot/.venv/bin/mailbot", str(installed)),
        encoding="utf-8",
    )
    finished = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "mailbot.service" not in finished.stderr, finished.stderr


def test_every_directive_is_commented() -> None:
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.strip() and not line.startswith(("#", "[")):
            assert lines[number - 1].startswith("#"), f"line {number + 1} has no comment: {line}"


def test_the_unit_runs_the_daemon_as_the_issue_asks() -> None:
    found = directives()
    settings = dict(found)
    assert settings["Type"] == "notify"
    assert settings["ExecStart"].endswith("mailbot run")
    assert settings["WatchdogSec"] and settings["Restart"] == "on-failure"
    assert settings["RestartPreventExitStatus"] == "78"
    assert settings["DynamicUser"] == "yes" and settings["StateDirectory"] == "mailbot"
    assert settings["CapabilityBoundingSet"] == "" and settings["UMask"] == "0077"


def test_every_secret_the_settings_read_is_a_credential() -> None:
    credentials = {value for name, value in directives() if name.startswith("LoadCredential")}
    assert credentials == set(SECRET_NAMES)
