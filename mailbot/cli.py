"""The commands: the only place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot import __version__
from mailbot.app import explain_files
from mailbot.settings import ConfigurationError, config_path, load_settings

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbot", description="Meeting invitations from a mailbox into NetSuite events."
    )
    parser.add_argument("--version", action="version", version=f"mailbot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explain = commands.add_parser(
        "explain",
        help="show what the robot would decide about .eml / .ics files",
        description="Run each file (.eml, .ics or winmail.dat) through the Event Sync rules "
        "and show the decision for every calendar object in it. Nothing is written.",
    )
    explain.add_argument("files", nargs="+", metavar="FILE")
    explain.add_argument(
        "--tz",
        metavar="ZONE",
        help="sync time zone (default: the config's netsuite.timezone, else UTC)",
    )
    explain.add_argument("--json", action="store_true", help="JSON Lines, one decision a line")
    explain.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    sim = commands.add_parser("sim", help="emulators for tests, the demo and benchmarks")
    emulators = sim.add_subparsers(dest="emulator", required=True, metavar="EMULATOR")
    netsuite = emulators.add_parser(
        "netsuite",
        help="a NetSuite REST emulator on this machine",
        description="Serve the NetSuite REST emulator until interrupted. The first line "
        "printed is its base URL. Never point it at real data.",
    )
    netsuite.add_argument("--host", default="127.0.0.1", help="address to listen on")
    netsuite.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    netsuite.add_argument("--data", metavar="FILE", help="data file (default: the demo data)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sim":
        return _simulate(args)
    return _explain_command(parser, args)


def _simulate(args: argparse.Namespace) -> int:
    from mailbot.sim.netsuite import serve  # noqa: PLC0415 - only this command loads it

    return serve(args.host, args.port, args.data)


def _explain_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        settings = load_settings(config_path(args.config))
    except ConfigurationError as error:
        _print_problems(error)
        return EXIT_CONFIG
    if args.tz is not None and not _is_zone(args.tz):
        parser.error(f"--tz: unknown IANA time zone {args.tz!r}")
    policy = settings.policy(args.tz)
    return _explain(args.files, policy, as_json=args.json, out=sys.stdout)


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _explain(files: list[str], policy: Any, *, as_json: bool, out: TextIO) -> int:
    status = EXIT_OK
    rows: list[dict[str, Any]] = []
    for explained in explain_files(files, policy):
        if explained.error is not None:
            print(f"mailbot: cannot read {explained.source}: {explained.error}", file=sys.stderr)
            status = EXIT_UNREADABLE
            continue
        if as_json:
            for record in explained.records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            rows.extend(explained.records)
    if not as_json:
        out.write(render_table(rows, policy.sync_zone_name))
    return status


def render_table(rows: list[dict[str, Any]], zone_name: str) -> str:
    """A readable table: one line per decision, its detail indented below it."""
    header = ("FILE", "OUTCOME", "REASON", "METHOD", f"WHEN ({zone_name})", "SUMMARY")
    lines = [
        (
            _short_path(row["file"], 38),
            row["outcome"],
            row["reason"] or "",
            row["method"] or "",
            _when(row),
            _short(row["summary"] or "", 40),
        )
        for row in rows
    ]
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=False)
    ]
    text = [_format_line(header, widths)]
    for row, line in zip(rows, lines, strict=True):
        text.append(_format_line(line, widths))
        if row["detail"]:
            text.append(f"    {row['detail']}")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    text.append(f"{len(rows)} decisions: {summary}" if rows else "no decisions")
    return "\n".join(text) + "\n"


def _format_line(cells: Sequence[str], widths: list[int]) -> str:
    return "  ".join(
        str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)
    ).rstrip()


def _when(row: dict[str, Any]) -> str:
    start, end = row["start"], row["end"]
    if not start:
        return ""
    if row["all_day"]:
        return f"{start} (all day)"
    until = end[11:16] if end[:10] == start[:10] else end[:16].replace("T", " ")
    return f"{start[:16].replace('T', ' ')} - {until}"


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_path(path: str, width: int) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def _print_problems(error: ConfigurationError) -> None:
    print(f"mailbot: configuration {error.source} is not usable:", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
