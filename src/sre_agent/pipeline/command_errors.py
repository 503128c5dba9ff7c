"""Why a command was refused; the API maps each to a status code."""

from __future__ import annotations


class CommandRejected(Exception):
    """The command cannot be carried out; the message says why."""


class NotFound(CommandRejected):
    """-> 404"""


class Conflict(CommandRejected):
    """-> 409: the state of the incident or action does not allow it."""


class Unavailable(CommandRejected):
    """-> 502: a system the command needs (Alertmanager) refused or could not be reached."""
