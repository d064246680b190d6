"""The commands: the only place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot import __version__
from mailbot.app import (
    explain_files,
    netsuite_config,
    open_backfill,
    open_daemon,
    open_engine,
    open_state,
    replay_files,
    run_demo,
)
from mailbot.backfill import BackfillReport
from mailbot.check import failed, render_checks, run_checks
from mailbot.logs import configure_logging
from mailbot.ports import FatalError, PortError, TemporaryError
from mailbot.reports import decision_log_report, status_report
from mailbot.service import Handled
from mailbot.settings import ConfigurationError, config_path, load_settings

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_USAGE = 2
RESPONSE_MARKS = {"ACCEPTED": "yes", "DECLINED": "no", "TENTATIVE": "maybe", "NO_RESPONSE": "-"}
EXIT_CHECK_FAILED = 1
EXIT_TEMPORARY = 75
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process ended by Ctrl-C


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
    replay = commands.add_parser(
        "replay",
        help="run local .eml files through the whole engine (NetSuite, state)",
        description="Process local messages exactly as the daemon would: CRM matching, the "
        "state store and NetSuite writes. With --dry-run nothing is written anywhere.",
    )
    replay.add_argument("files", nargs="+", metavar="FILE")
    replay.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    replay.add_argument("--dry-run", action="store_true", help="decide, but write nothing")
    replay.add_argument("--json", action="store_true", help="JSON Lines, one decision a line")
    commands.add_parser(
        "demo",
        help="the whole job on bundled samples against the NetSuite emulator",
        description="Start the NetSuite emulator with its demo data, process the bundled "
        "sample mailbox through the sync engine (SQLite state in a temporary folder) and show "
        "the decisions and the events NetSuite then holds.",
    )
    for name, text in (
        ("run", "watch the shared mailbox and sync invitations (the service)"),
        ("once", "one pass over the shared mailbox, then exit (for timers)"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
        command.add_argument(
            "--dry-run",
            action="store_true",
            help="mailbox opened read-only, nothing written to NetSuite, the state untouched; "
            "the decisions are printed",
        )
        command.add_argument(
            "--json",
            action="store_true",
            help="print every decision as a JSON line on standard output (also without --dry-run)",
        )
    backfill = commands.add_parser(
        "backfill",
        help="process the mail already in a folder (resumable)",
        description="Run the messages already in a folder through the engine, oldest first, "
        "as the daemon would. The watched folder's messages are filed as the daemon files "
        "them; another folder's stay where they are. Interrupted (Ctrl-C, SIGTERM), it "
        "resumes where it stopped when run again.",
    )
    backfill.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    backfill.add_argument("--folder", help="the folder to walk (default: the watched one)")
    backfill.add_argument(
        "--since", type=_day, metavar="DATE", help="only mail received on or after DATE (ISO)"
    )
    backfill.add_argument(
        "--dry-run",
        action="store_true",
        help="mailbox opened read-only, nothing written to NetSuite, the state untouched",
    )
    backfill.add_argument("--json", action="store_true", help="JSON Lines, one decision a line")
    check = commands.add_parser(
        "check",
        help="check the configuration, IMAP, NetSuite and the clock before running",
        description="Validate the configuration, connect to the mailbox (read-only) and to "
        "NetSuite, and report the server's capabilities, NetSuite authentication, the "
        "calendarEvent schema and the clock skew. Changes nothing. Exit 0 when no check "
        "failed, 1 when one did, 78 when the configuration is not usable.",
    )
    check.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    check.add_argument("--json", action="store_true", help="one JSON document")
    status = commands.add_parser("status", help="counts, last run, quarantined messages")
    status.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    status.add_argument("--json", action="store_true")
    log = commands.add_parser("log", help="query the decision log")
    log.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    log.add_argument("--message-id")
    log.add_argument("--uid", help="the event's iCalendar UID")
    log.add_argument("--outcome")
    log.add_argument("--reason")
    log.add_argument("--limit", type=int, default=50)
    log.add_argument("--json", action="store_true")
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


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one return a command
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sim":
        return _simulate(args)
    if args.command == "demo":
        return _demo(sys.stdout)
    if args.command == "replay":
        return _replay(args, sys.stdout)
    if args.command in ("run", "once"):
        return _daemon(args, sys.stdout)
    if args.command == "backfill":
        return _backfill(args)
    if args.command in ("status", "log"):
        return _report(args, sys.stdout)
    if args.command == "check":
        return _check(args, sys.stdout)
    return _explain_command(parser, args)


def _check(args: argparse.Namespace, out: TextIO) -> int:
    try:
        results = run_checks(load_settings(config_path(args.config)))
    except ConfigurationError as error:
        _print_problems(error)
        if args.json:
            out.write(json.dumps({"configuration": error.problems}, ensure_ascii=False) + "\n")
        return EXIT_CONFIG
    out.write(render_checks(results, as_json=args.json))
    return EXIT_CHECK_FAILED if failed(results) else EXIT_OK


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    try:
        settings = load_settings(config_path(args.config))
        config = netsuite_config(settings)
    except ConfigurationError as error:
        _print_problems(error)
        return EXIT_CONFIG
    status = EXIT_OK
    rows: list[dict[str, Any]] = []
    try:
        with open_engine(settings, config, dry_run=args.dry_run) as engine:
            for result in replay_files(engine, args.files, datetime.now(UTC)):
                if result.error is not None:
                    print(f"mailbot: cannot read {result.source}: {result.error}", file=sys.stderr)
                    status = EXIT_UNREADABLE
                    continue
                _emit(result.records, as_json=args.json, out=out, rows=rows)
    except TemporaryError as error:
        print(f"mailbot: {error}; nothing was recorded for that message", file=sys.stderr)
        return EXIT_TEMPORARY
    except FatalError as error:
        print(f"mailbot: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if not args.json:
        out.write(render_table(rows, settings.policy().sync_zone_name, engine_columns=True))
    return status


def _daemon(args: argparse.Namespace, out: TextIO) -> int:
    try:
        settings = load_settings(config_path(args.config))
        printer = DecisionPrinter(
            out,
            settings.policy().sync_zone_name,
            as_json=args.json,
            streaming=args.command == "run",
        )
        shown = printer.add if args.dry_run or args.json else None
        running = open_daemon(settings, dry_run=args.dry_run, on_handled=shown)
    except ConfigurationError as error:
        _print_problems(error)
        return EXIT_CONFIG
    except FatalError as error:
        print(f"mailbot: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(json=settings.daemon.log_json)
    try:
        return running.daemon.once() if args.command == "once" else running.daemon.run_forever()
    finally:
        running.close()
        if shown is not None:
            printer.finish()


class DecisionPrinter:
    """The decisions of ``run``/``once`` on standard output: JSON Lines as they come, or a
    table (``once``: one table at the end; ``run``: a line per decision as it comes, in
    columns of fixed width, since the run has no end to wait for)."""

    STREAM_WIDTHS = (10, 9, 26, 8, 35, 40, 9)

    def __init__(self, out: TextIO, zone_name: str, *, as_json: bool, streaming: bool) -> None:
        self.out = out
        self.zone_name = zone_name
        self.as_json = as_json
        self.streaming = streaming
        self.rows: list[dict[str, Any]] = []
        self._header_written = False

    def add(self, handled: Handled) -> None:
        if self.as_json:
            for record in handled.records:
                self.out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        elif self.streaming:
            for record in handled.records:
                self._stream(record)
        else:
            self.rows.extend(handled.records)
            return
        self.out.flush()

    def finish(self) -> None:
        if not (self.as_json or self.streaming):
            self.out.write(
                render_table(self.rows, self.zone_name, engine_columns=True, first="UID")
            )
        self.out.flush()

    def _stream(self, record: dict[str, Any]) -> None:
        widths = list(self.STREAM_WIDTHS)
        if not self._header_written:
            self.out.write(_format_line(_table_header(self.zone_name, True, "UID"), widths) + "\n")
            self._header_written = True
        self.out.write(_format_line(_table_line(record, True), widths) + "\n")
        if record["detail"]:
            self.out.write(f"    {record['detail']}\n")


def _backfill(args: argparse.Namespace) -> int:
    """Decisions on stdout (JSON Lines as they come, or a table at the end), progress and
    the summary on stderr. Output is written to ``sys.stdout`` as it is at that moment:
    while the progress bar shares the terminal, rich stands in for it."""
    try:
        settings = load_settings(config_path(args.config))
        run = open_backfill(settings, folder=args.folder, since=args.since, dry_run=args.dry_run)
    except ConfigurationError as error:
        _print_problems(error)
        return EXIT_CONFIG
    except PortError as error:
        print(f"mailbot: {error}", file=sys.stderr)
        return EXIT_TEMPORARY if isinstance(error, TemporaryError) else EXIT_CONFIG
    configure_logging(json=settings.daemon.log_json)
    rows: list[dict[str, Any]] = []

    def emit(records: Sequence[dict[str, Any]]) -> None:
        _emit(tuple(records), as_json=args.json, out=sys.stdout, rows=rows)
        sys.stdout.flush()  # JSON Lines as they happen, also through a pipe

    status = EXIT_OK
    try:
        run.backfill.run(emit)
    except FatalError as error:
        print(f"mailbot: {error}", file=sys.stderr)
        status = EXIT_CONFIG
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, which is safe too
        status = EXIT_INTERRUPTED
    except Exception as error:  # ends the command: a message, exit 75
        detail = not isinstance(error, PortError)
        logging.getLogger("mailbot.backfill").error("stopped: %s", error, exc_info=detail)
        status = EXIT_TEMPORARY
    finally:
        run.close()
    report = run.backfill.report
    if status == EXIT_CONFIG and not report.handled:
        return status  # nothing done: the error says it all
    if not args.json:
        zone = settings.policy().sync_zone_name
        sys.stdout.write(render_table(rows, zone, engine_columns=True, first="MESSAGE"))
    _print_backfill_end(report, status, dry_run=args.dry_run)
    return status


def _print_backfill_end(report: BackfillReport, status: int, *, dry_run: bool) -> None:
    print(report.summary(), file=sys.stderr)
    if report.interrupted or status == EXIT_TEMPORARY:
        what = "interrupted" if report.interrupted else "stopped"
        print(
            f"{what}: {report.done} of {report.listed} done; run the same command again to resume",
            file=sys.stderr,
        )
    if dry_run:
        print("dry run: nothing was written to NetSuite, the mailbox or the state", file=sys.stderr)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _report(args: argparse.Namespace, out: TextIO) -> int:
    try:
        settings = load_settings(config_path(args.config))
    except ConfigurationError as error:
        _print_problems(error)
        return EXIT_CONFIG
    with open_state(settings) as state:
        if args.command == "status":
            out.write(
                status_report(state, max_attempts=settings.daemon.max_attempts, as_json=args.json)
            )
        else:
            out.write(
                decision_log_report(
                    state,
                    message_id=args.message_id,
                    uid=args.uid,
                    outcome=args.outcome,
                    reason=args.reason,
                    limit=args.limit,
                    as_json=args.json,
                )
            )
    return EXIT_OK


def _emit(
    records: tuple[dict[str, Any], ...], *, as_json: bool, out: TextIO, rows: list[dict[str, Any]]
) -> None:
    if as_json:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    else:
        rows.extend(records)


def _demo(out: TextIO) -> int:
    demo = run_demo(datetime.now(UTC))
    out.write(f"NetSuite emulator with demo data at {demo.base_url}\n\n")
    out.write(render_table(list(demo.records), demo.zone_name, engine_columns=True))
    out.write("\nEvents NetSuite now holds:\n")
    out.write(render_events(demo.events))
    return EXIT_OK


def render_events(events: Sequence[dict[str, Any]]) -> str:
    header = (
        "ID",
        "DATE",
        "TIME",
        "STATUS",
        "TITLE",
        "COMPANY",
        "CONTACT",
        "OPPORTUNITY",
        "ATTENDEES",
    )
    lines = [header] + [_event_line(event) for event in sorted(events, key=_event_order)]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join(_format_line(line, widths) for line in lines) + f"\n{len(events)} events\n"


def _event_order(event: dict[str, Any]) -> tuple[str, str]:
    return (str(event.get("startDate") or ""), str(event.get("startTime") or ""))


def _event_line(event: dict[str, Any]) -> tuple[str, ...]:
    def ref(name: str) -> str:
        value = event.get(name)
        return str(value.get("id")) if isinstance(value, dict) else str(value or "")

    items = (event.get("attendee") or {}).get("items") or []
    attendees = ", ".join(
        f"{(item.get('attendee') or {}).get('id')}:{RESPONSE_MARKS.get(item.get('response'), '?')}"
        for item in items
    )
    when = (
        "all day"
        if event.get("allDayEvent")
        else f"{event.get('startTime')}-{event.get('endTime')}"
    )
    return (
        str(event.get("id")),
        str(event.get("startDate")),
        when,
        str(event.get("status")),
        _short(str(event.get("title") or ""), 36),
        ref("company"),
        ref("contact"),
        ref("transaction"),
        attendees,
    )


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


def render_table(
    rows: list[dict[str, Any]],
    zone_name: str,
    *,
    engine_columns: bool = False,
    first: str = "FILE",
) -> str:
    """A readable table: one line per decision, its detail indented below it."""
    header = _table_header(zone_name, engine_columns, first)
    lines = [_table_line(row, engine_columns) for row in rows]
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


def _table_header(zone_name: str, engine_columns: bool, first: str) -> tuple[str, ...]:
    header = (first, "OUTCOME", "REASON", "METHOD", f"WHEN ({zone_name})", "SUMMARY")
    return (*header, "NETSUITE") if engine_columns else header


def _table_line(row: dict[str, Any], engine_columns: bool) -> tuple[str, ...]:
    return (
        _short_path(row["file"], 38),
        row["outcome"],
        row["reason"] or "",
        row["method"] or "",
        _when(row),
        _short(row["summary"] or "", 40),
        *((_written(row),) if engine_columns else ()),
    )


def _written(row: dict[str, Any]) -> str:
    if row.get("error"):
        return "refused"
    if not row.get("written"):
        return ""
    return f"#{row['netsuite_id']}" if row.get("netsuite_id") else "written"


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
