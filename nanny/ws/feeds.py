"""Each signed-in user's feed on this process: the user's connections here, and the user's
broker channel, which carries the booking events addressed to the user (a status change of one
of their bookings reaches every socket of theirs, in a room or not). The channel is held while
a connection of the user here needs it, from before the client learns it is signed in, so no
event falls in between."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Set
from contextlib import AbstractAsyncContextManager

from nanny.tasks import TaskSet
from nanny.ws.broker import Broker
from nanny.ws.connection import Connection
from nanny.ws.subscriptions import Subscriptions


class UserFeeds:
    def __init__(self, broker: Broker, tasks: TaskSet):
        self._broker = broker
        self.by_user: dict[int, set[Connection]] = {}
        self._channels: Subscriptions[int, None] = Subscriptions(
            self._subscribe, self._unsubscribe, tasks
        )

    def hold(self, user_id: int) -> AbstractAsyncContextManager[None]:
        """Booking events addressed to the user reach this process while this is held (from
        when it is entered: the channel is subscribed and confirmed)."""
        return self._channels.hold(user_id)

    async def _subscribe(self, user_id: int) -> None:
        await self._broker.subscribe_user(user_id)

    async def _unsubscribe(self, user_id: int, _: None) -> None:
        self._broker.unsubscribe_user(user_id)

    @contextlib.contextmanager
    def signed_in(self, conn: Connection) -> Iterator[None]:
        """The connection is one of its user's here."""
        self.by_user.setdefault(conn.user_id, set()).add(conn)
        try:
            yield
        finally:
            conns = self.by_user.get(conn.user_id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.by_user[conn.user_id]

    def connections(self, user_id: int) -> Set[Connection]:
        return self.by_user.get(user_id, frozenset())

    def send(self, user_id: int, frame: str) -> None:
        for conn in self.by_user.get(user_id, ()):
            conn.send(frame)
