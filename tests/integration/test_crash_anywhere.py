"""Crash anywhere: ``mailbot run`` killed with SIGKILL at random moments over a mailbox of 300
messages ends exactly where an uninterrupted run ends.

Two fresh installations (NetSuite emulator with the demo CRM, a new Dovecot account, a new
state database) get the same mailbox (``mailbox_workload``, seeded). The reference daemon
runs to the end undisturbed. The other is killed ``KILLS`` times (at least 20) and restarted
each time, each kill drawn among four triggers (``kill_at_random``): during start-up, during
the IMAP fetch and CRM look-up, right after a NetSuite write (before its commit), right
after a commit (before or during the MOVE); every run leaves work for the next. Then it
runs to the end.

Compared afterwards: NetSuite's events (every field mailbot writes), no event twice, every
message in the same outcome folder as in the reference run (by Message-ID) and none left in
INBOX, and the decision log: every message processed exactly once (one commit, attempts 1)
with the same decisions as in the reference run.

A kill between a NetSuite write and its commit makes the next run write again (an upsert by
external id, so nothing doubles); a kill between the commit and the MOVE leaves a message in
INBOX that the next run files without writing (``already-processed``). Both are counted.

Figures: a line ``crash-anywhere figures {...}`` (shown with ``pytest -s``). The seed is
``MAILBOT_RELIABILITY_SEED`` (default 7); the number of kills ``MAILBOT_CRASH_KILLS``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mailbot.sim.netsuite import NetSuiteEmulator, load_data
from tests.imap_fixtures import DovecotServer, ImapAccount
from tests.integration.mailbox_workload import build_workload
from tests.integration.reliability_support import (
    INBOX,
    OUTCOME_FOLDERS,
    DaemonProcess,
    Setup,
    StateSnapshot,
    closing_client,
    deliver,
    duplicate_events,
    filed_by_message_id,
    folder_counts,
    install,
    kill_leftovers,
    netsuite_events,
    read_state,
    write_requests,
)

SEED = int(os.environ.get("MAILBOT_RELIABILITY_SEED", "7"))
MESSAGES = 300
KILLS = int(os.environ.get("MAILBOT_CRASH_KILLS", "32"))
LONG_KILLS = 60  # for each of three more mailboxes (make test-long)
MIN_KILLS = 20
START_UP = (0.05, 0.6)  # seconds after the start: a kill during start-up
FETCH_WINDOW = 0.1  # seconds after the IMAP connection is up: a kill during the fetch
JITTER = 0.02  # seconds after the n-th message's decision line
WRITE_JITTER = 0.005  # seconds after NetSuite carried out the n-th write
WAIT = 120.0  # seconds for a trigger that takes a few


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    yield
    kill_leftovers()


@dataclass
class Kill:
    """One SIGKILL and what it left behind."""

    by: str  # "start-up", "fetch", "write" or "decision" (see ``kill_at_random``)
    after_seconds: float
    messages_in_run: int  # messages whose decisions this run logged before the kill
    left_unfiled: bool = False  # a message committed by this run still in INBOX
    writes_uncommitted: int = 0  # NetSuite writes of this run that no commit records


@dataclass
class CrashRun:
    kills: list[Kill] = field(default_factory=list)
    unfiled: set[int] = field(default_factory=set)  # committed, still in INBOX
    wasted_writes: int = 0  # NetSuite writes no commit records, so far

    def look_behind(
        self, kill: Kill, setup: Setup, account: ImapAccount, emulator: NetSuiteEmulator
    ) -> None:
        """What the kill left: a commit whose message is still in INBOX, NetSuite writes
        that no commit records (both for the next run to repair)."""
        if setup.state_path.exists():
            state = read_state(setup.state_path)
            unfiled = {uid for uid in inbox_uids(account) if str(uid) in state.processed}
            written = written_decisions(state)
        else:
            unfiled, written = set(), 0
        kill.left_unfiled = bool(unfiled - self.unfiled)
        self.unfiled = unfiled
        wasted = len(write_requests(emulator)) - written
        kill.writes_uncommitted = wasted - self.wasted_writes
        self.wasted_writes = wasted
        self.kills.append(kill)

    def figures(self) -> dict[str, Any]:
        return {
            "kills": len(self.kills),
            "kills_by_trigger": dict(Counter(k.by for k in self.kills)),
            "kills_before_the_first_decision": sum(k.messages_in_run == 0 for k in self.kills),
            "kills_between_commit_and_move": sum(k.left_unfiled for k in self.kills),
            "kills_between_write_and_commit": sum(k.writes_uncommitted > 0 for k in self.kills),
        }


def run_to_the_end(setup: Setup, account: ImapAccount, total: int) -> float:
    """``mailbot run`` until every message is filed, then SIGTERM (exit 0); the seconds."""
    daemon = DaemonProcess.start(setup)
    daemon.wait_for(lambda: _all_filed(account, total), "every message filed")
    assert daemon.terminate() == 0, daemon.transcript()
    return time.monotonic() - daemon.started


def _all_filed(account: ImapAccount, total: int) -> bool:
    counts = folder_counts(account)
    return counts[INBOX] == 0 and sum(counts[f] for f in OUTCOME_FOLDERS) == total


def inbox_uids(account: ImapAccount) -> set[int]:
    with closing_client(account) as client:
        client.select_folder(INBOX, readonly=True)
        return {int(uid) for uid in client.search(["ALL"])}


def messages_logged(records: list[dict[str, Any]]) -> int:
    """Messages with a decision line (the lines of a series are one message)."""
    return len({r.get("mailbox_uid") for r in records if r.get("logger") == "mailbot.decisions"})


def kill_at_random(
    setup: Setup, account: ImapAccount, emulator: NetSuiteEmulator, rng: random.Random, left: int
) -> Kill:
    """Start the daemon and SIGKILL it when the drawn trigger fires:

    * ``start-up``: 0.05 to 0.6 s after the start (imports, state database, NetSuite's
      metadata, IMAP log-in), unless a message is done before;
    * ``fetch``: up to 100 ms after the IMAP connection is up (the FETCH of the batch, the
      CRM look-up, the first messages);
    * ``write``: up to 5 ms after NetSuite carried out the w-th write of this run (the
      answer on its way, the commit);
    * ``decision``: up to 20 ms after the n-th message's decision line, which comes right
      after its commit (the MOVE, the next message's write).

    n (and w <= n) is drawn so that each run leaves work for the ones after it; every
    trigger fires at the latest after n messages (it then counts as ``decision``).
    """
    remaining = len(inbox_uids(account))
    assert remaining > 0, "the mailbox ran dry before the kills were done"
    budget = rng.randint(1, max(1, remaining // (left + 1)))
    trigger = rng.choice(("start-up", "fetch", "write", "decision"))
    writes = len(write_requests(emulator)) + rng.randint(1, budget)
    plan = Trigger(
        messages=1 if trigger == "start-up" else budget,
        writes=writes if trigger == "write" else None,
        after_start=rng.uniform(*START_UP) if trigger == "start-up" else None,
        after_connect=rng.uniform(0, FETCH_WINDOW) if trigger == "fetch" else None,
    )
    daemon = DaemonProcess.start(setup)
    fired = plan.wait(daemon, emulator)
    time.sleep(rng.uniform(0, WRITE_JITTER if fired == "write" else JITTER))
    assert daemon.process.poll() is None, f"mailbot exited early:\n{daemon.transcript()}"
    assert fired is not None, f"no trigger within {WAIT:.0f}s:\n{daemon.transcript()}"
    daemon.kill()
    return Kill(
        by=fired,
        after_seconds=round(time.monotonic() - daemon.started, 3),
        messages_in_run=messages_logged(daemon.records),
    )


@dataclass(frozen=True)
class Trigger:
    """When to kill: after ``messages`` messages, the ``writes``-th NetSuite write, some
    seconds after the start or after the IMAP connection, whichever comes first."""

    messages: int
    writes: int | None = None
    after_start: float | None = None
    after_connect: float | None = None

    def wait(self, daemon: DaemonProcess, emulator: NetSuiteEmulator) -> str | None:
        """The trigger that fired; None when the process ended or nothing fired in time."""
        deadline = daemon.started + (self.after_start or WAIT)
        connected_at: float | None = None
        while daemon.process.poll() is None:
            now = time.monotonic()
            records = daemon.lines()
            if self.writes is not None and len(write_requests(emulator)) >= self.writes:
                return "write"
            if messages_logged(records) >= self.messages:
                return "decision"
            if self.after_connect is not None and connected_at is None and _connected(records):
                connected_at = now
            if connected_at is not None and now >= connected_at + (self.after_connect or 0):
                return "fetch"
            if now >= deadline:
                return "start-up" if self.after_start is not None else None
            time.sleep(0.001)
        return None


def _connected(records: list[dict[str, Any]]) -> bool:
    return any(
        r.get("logger") == "mailbot.imap" and str(r.get("message")).startswith("connected to")
        for r in records
    )


def test_sigkill_anywhere_ends_as_an_uninterrupted_run(
    tmp_path: Path, imap_server: DovecotServer
) -> None:
    crash_anywhere(tmp_path, imap_server, SEED, KILLS)


@pytest.mark.long
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_anywhere_with_more_kills_and_other_mailboxes(
    tmp_path: Path, imap_server: DovecotServer, seed: int
) -> None:
    crash_anywhere(tmp_path, imap_server, seed, LONG_KILLS)


def crash_anywhere(tmp_path: Path, imap_server: DovecotServer, seed: int, kills: int) -> None:
    """The reference run, the run killed ``kills`` times, and their comparison."""
    workload = build_workload(seed, messages=MESSAGES)
    total = len(workload)
    assert total >= MESSAGES and kills >= MIN_KILLS
    with NetSuiteEmulator(load_data(None)) as quiet, NetSuiteEmulator(load_data(None)) as netsuite:
        reference_account = imap_server.new_account()
        deliver(reference_account, workload.messages)
        reference = install(tmp_path / "reference", quiet, reference_account)
        reference_seconds = run_to_the_end(reference, reference_account, total)

        account = imap_server.new_account()
        deliver(account, workload.messages)
        setup = install(tmp_path / "crashed", netsuite, account)
        rng = random.Random(seed)  # noqa: S311 - when to kill, repeatable
        crashes = CrashRun()
        started = time.monotonic()
        while len(crashes.kills) < kills:
            kill = kill_at_random(setup, account, netsuite, rng, kills - len(crashes.kills))
            crashes.look_behind(kill, setup, account, netsuite)
        final_seconds = run_to_the_end(setup, account, total)
        crashed_seconds = time.monotonic() - started

        expected_events = netsuite_events(quiet)
        assert netsuite_events(netsuite) == expected_events
        assert duplicate_events(netsuite) == []
        assert duplicate_events(quiet) == []
        assert folder_counts(account)[INBOX] == 0
        assert filed_by_message_id(account) == filed_by_message_id(reference_account)
        expected_state = read_state(reference.state_path)
        state = read_state(setup.state_path)
        assert_complete_log(expected_state, total)
        assert len(write_requests(quiet)) == written_decisions(expected_state)
        assert state.processed == expected_state.processed
        assert state.decisions == expected_state.decisions

        figures = {
            "seed": seed,
            "messages": total,
            "message_kinds": workload.counts(),
            "events": len(expected_events),
            "decisions": sum(len(rows) for rows in state.decisions.values()),
            "outcomes": dict(state.outcomes()),
            **crashes.figures(),
            "netsuite_writes_reference": len(write_requests(quiet)),
            "netsuite_writes_repeated_after_kills": (
                len(write_requests(netsuite)) - len(write_requests(quiet))
            ),
            "reference_run_seconds": round(reference_seconds, 1),
            "crash_run_seconds": round(crashed_seconds, 1),
            "last_run_seconds": round(final_seconds, 1),
        }
    print("crash-anywhere figures", json.dumps(figures))


def written_decisions(state: StateSnapshot) -> int:
    return sum(row[-1] for rows in state.decisions.values() for row in rows)


def assert_complete_log(state: StateSnapshot, total: int) -> None:
    """Every message processed once, each with at least one decision."""
    assert len(state.processed) == total
    assert {attempts for _, _, attempts, _ in state.processed.values()} == {1}
    assert set(state.decisions) == set(state.processed)
