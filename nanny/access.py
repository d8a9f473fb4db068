"""Who takes part in a booking and who may see it: the rule every door shares (REST, WebSocket,
the pages). The database's copy of it is in the message-storing function (migrations)."""

from __future__ import annotations

from typing import Protocol


class Parties(Protocol):
    """Anything naming a booking's two parties: a booking, its chat, a live room."""

    @property
    def owner_id(self) -> int: ...

    @property
    def sitter_id(self) -> int: ...


def is_participant(booking: Parties, user_id: int) -> bool:
    return user_id in (booking.owner_id, booking.sitter_id)


def may_view(booking: Parties, user_id: int, role: str) -> bool:
    """A booking and its chat are visible to their participants and to admins; to anyone else
    they do not exist (404, never 403)."""
    return role == "admin" or is_participant(booking, user_id)
