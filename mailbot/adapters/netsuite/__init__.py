"""NetSuite over SuiteTalk REST: the client (auth, one request chokepoint) and its errors."""

from mailbot.adapters.netsuite.client import NetSuiteClient, checked_external_id, event_path
from mailbot.adapters.netsuite.config import (
    ClientCredentialsConfig,
    NetSuiteConfig,
    TokenAuthConfig,
    account_base_url,
)
from mailbot.adapters.netsuite.errors import (
    NetSuiteAuthenticationError,
    NetSuiteCertificateError,
    NetSuiteError,
    NetSuiteNotFoundError,
    NetSuiteRequestError,
    NetSuiteTransientError,
)

__all__ = [
    "ClientCredentialsConfig",
    "NetSuiteAuthenticationError",
    "NetSuiteCertificateError",
    "NetSuiteClient",
    "NetSuiteConfig",
    "NetSuiteError",
    "NetSuiteNotFoundError",
    "NetSuiteRequestError",
    "NetSuiteTransientError",
    "TokenAuthConfig",
    "account_base_url",
    "checked_external_id",
    "event_path",
]
