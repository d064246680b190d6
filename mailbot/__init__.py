"""mailbot: meeting invitations from a shared mailbox into NetSuite CRM events."""

__version__ = "0.1.0"
