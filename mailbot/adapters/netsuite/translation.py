"""The NetSuite client's errors as the ports' errors, grouped by what the service does next.

Used by both adapters (``NetSuiteCalendar`` for writes, ``NetSuiteDirectory`` for CRM
look-ups), so the daemon meets only ``FatalError``, ``TemporaryError`` and ``RejectedError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mailbot.adapters.netsuite.errors import (
    NetSuiteAuthenticationError,
    NetSuiteCertificateError,
    NetSuiteError,
    NetSuiteRequestError,
    NetSuiteTransientError,
)
from mailbot.ports import FatalError, RejectedError, TemporaryError

FORBIDDEN = 403


@contextmanager
def translated_errors(
    what: str = "the write", *, forbidden_is_fatal: bool = False
) -> Iterator[None]:
    """NetSuite's errors during ``what`` as the port's.

    Refused credentials and an untrusted TLS certificate are fatal. A 4xx is this message's
    (``RejectedError``), except a 403 when ``forbidden_is_fatal``: for a CRM look-up, whose
    queries are the same for every message, it says the integration's role lacks a
    permission, which no retry mends (a write's 403 may concern one record only). 429, 5xx
    and timeouts are temporary.
    """
    try:
        yield
    except NetSuiteAuthenticationError as error:
        raise FatalError(f"NetSuite refused the credentials: {describe(error)}") from error
    except NetSuiteCertificateError as error:
        raise FatalError(f"NetSuite cannot be trusted: {describe(error)}") from error
    except NetSuiteTransientError as error:
        raise TemporaryError(f"NetSuite is unavailable: {describe(error)}") from error
    except NetSuiteRequestError as error:
        if forbidden_is_fatal and error.status == FORBIDDEN:
            raise FatalError(
                f"NetSuite refused {what} ({describe(error)}): give the integration's role "
                "the permission named"
            ) from error
        raise RejectedError(f"NetSuite refused {what}: {describe(error)}") from error
    except NetSuiteError as error:
        raise TemporaryError(f"NetSuite answered unexpectedly: {describe(error)}") from error


def describe(error: NetSuiteError) -> str:
    parts = [str(error.status or ""), error.code or "", error.detail or str(error)]
    if error.error_path:
        parts.append(f"at {error.error_path}")
    return " ".join(part for part in parts if part)
