"""nats-py with the atomic auto-unsubscribe extension (docs/sub-max.md).

Imported by applications, examples and tests, never by the broker: it needs nats-py
(``pip install nats-py``), which the broker does not depend on.

``SubMaxClient`` is nats-py's ``Client`` that asks for the extension in CONNECT when the
server advertises ``"sub_max": true`` in INFO, and then sends a subscription with a
limit (``subscribe(..., max_msgs=n)``) as one ``SUB <subject> [queue] <sid> max=<n>``:
the server never delivers more than n messages to it, and forgets it after the n-th.
Against a server without the extension (nats-server), and while reconnecting (the
command then waits for a server that may not take it), it sends ``SUB`` then
``UNSUB <sid> <n>`` in one write: the server applies the same limit once it reads the
UNSUB. A limit above 999,999,999, more than a server reads, is counted by nats-py alone,
as stock nats-py counts every limit (it tells the server nothing and leaves the interest
there). Everything else is nats-py's behaviour, unchanged.

    nc = await connect("nats://127.0.0.1:4222")
    sub = await nc.subscribe("orders.*", max_msgs=1)
"""

from __future__ import annotations

import json
from typing import Any

from nats.aio.client import Client
from nats.aio.subscription import Subscription

# The INFO and CONNECT field of the extension, and the marker of a SUB's limit.
SUB_MAX_FIELD = "sub_max"
SUB_LIMIT_MARK = "max="
_CONNECT = b"CONNECT "
# The server reads a limit as UNSUB's max: at most 9 digits.
MAX_LIMIT = 999_999_999


class SubMaxClient(Client):
    """nats-py's client, negotiating the sub_max extension on every (re)connect."""

    @property
    def sub_max(self) -> bool:
        """Whether the server of the current connection took the extension (it
        advertised it, so our CONNECT asked for it)."""
        return self._server_info.get(SUB_MAX_FIELD) is True

    def _connect_command(self) -> bytes:
        command = super()._connect_command()
        if not self.sub_max:
            return command  # nats-server: the CONNECT nats-py always sends
        fields = json.loads(command[len(_CONNECT) :])
        fields[SUB_MAX_FIELD] = True
        return _CONNECT + json.dumps(fields, sort_keys=True).encode() + b"\r\n"

    async def _send_subscribe(self, sub: Subscription) -> None:
        limit = sub._max_msgs
        if not 0 < limit <= MAX_LIMIT:
            # No limit, or one no server can take (nats-server would read a longer
            # UNSUB max as no number and unsubscribe at once): nats-py's own count.
            await super()._send_subscribe(sub)
            return
        queue = f" {sub._queue}" if sub._queue else ""
        line = f"SUB {sub._subject}{queue} {sub._id}"
        # While reconnecting the command waits for a server that may not take the
        # extension; nats-py's replay of subscriptions sends SUB and UNSUB there anyway.
        if self.sub_max and self.is_connected:
            await self._send_command(f"{line} {SUB_LIMIT_MARK}{limit}\r\n".encode())
        else:
            await self._send_command(f"{line}\r\nUNSUB {sub._id} {limit}\r\n".encode())
        await self._flush_pending()


async def connect(
    servers: str | list[str] = "nats://127.0.0.1:4222", **options: Any
) -> SubMaxClient:
    """``nats.connect`` with a SubMaxClient (the same options)."""
    client = SubMaxClient()
    await client.connect(servers, **options)
    return client
