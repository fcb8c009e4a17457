"""Routing a message: local delivery and forwarding to peer shards.

Owner: a worker shard; runs on its loop. A subject's match is a cached `RouteResult`
(route_result.py): the local plain subscriptions, the peers with plain interest, and
per queue group the members to pick from. ``process_msg_results`` then only walks
tuples.

Queue groups are exactly-once broker-wide: the publishing shard picks one member among
its local members (weight 1 each) and the peers that advertised the group (weight =
their member count), so deliveries balance over all shards. A remote pick travels as
``RMSG ... | queue``; the receiving shard hands it to one of its local members.
Each peer gets at most one RMSG per message, carrying every queue picked for it. A
pick can be stale: the group's last member on the picked shard may have left (UNSUB,
its limit, a disconnect) before that shard's RS- reached the picking one. The picked
shard then passes the message on to a member elsewhere, picked by its own view, as a
``QMSG`` (frames.qmsg: for the group only, not for plain subscriptions, which had it).
It never passes it back to a shard whose last member had left: that shard sent its RS-
on the same ring before the message. A hop count bounds the rest.

Delivery bytes are built once per message: a shared ``MSG <subject> `` head and a
``[reply] <size>\\r\\n<payload>\\r\\n`` tail, with only the sid varying.

Permissions. A subscription whose deliveries need a per-message check (``checked``:
a delivery-time deny, or reply tracking for allow_responses; security/permissions.py)
is kept apart in a result (``RouteResult.checked``) and in queue groups
(``QueueGroup.checked``), so the paths that carry everyone else's messages test nothing
more than one attribute per message. A check happens where the message is delivered,
on the subscriber's shard, whichever shard it was published on.
"""

from __future__ import annotations

import time
from random import choices, random
from typing import Any

from shardbroker.core import Plans as CorePlans
from shardbroker.core.plans import Plans, QueuePlan, queue_plan
from shardbroker.protocol import frames
from shardbroker.protocol.parser import block_payloads, block_tails
from shardbroker.security.accounts import SYSTEM_PREFIX, AccountRoutes
from shardbroker.security.permissions import CHECK_DENY, CHECK_INTERNAL
from shardbroker.shard.interest import RemoteInterest
from shardbroker.worker.route_result import QueueGroup, RouteResult, Subscriber, Subscription

# A plan (core/publoop.py): local targets (subscription, client, "MSG <subject> <sid>"),
# peers, RMSG prefix, queue groups.
Target = tuple[Subscription, Subscriber, bytes]
Plan = tuple[tuple[Target, ...], tuple[int, ...], bytes, tuple[QueuePlan, ...]]
_NO_INTEREST: Plan = ((), (), b"", ())


def _tails(
    reply: bytes | None, header_size: int, message: bytes, size_token: bytes | None
) -> tuple[bytes, bytes | None]:
    """The delivery tails: for MSG (headers stripped) and, with headers, for HMSG."""
    reply_part = b" " + reply if reply is not None else b""
    if header_size:
        total = len(message)
        payload = message[header_size:]
        msg_tail = (
            reply_part + b" " + str(total - header_size).encode() + b"\r\n" + payload + b"\r\n"
        )
        hmsg_tail = (
            reply_part
            + b" "
            + str(header_size).encode()
            + b" "
            + str(total).encode()
            + b"\r\n"
            + message
            + b"\r\n"
        )
        return msg_tail, hmsg_tail
    size = size_token if size_token is not None else str(len(message)).encode()
    return reply_part + b" " + size + b"\r\n" + message + b"\r\n", None


def run_blob(head: bytes, payloads: list[bytes], sizes: bytes | list[bytes]) -> bytes:
    """Messages of a run as one bytes object, built by C-level joins.

    ``head`` is the control line up to the size (``MSG <subject> <sid> [reply] `` or
    ``RMSG <account> <subject> [reply] ``). With one size token for all, the lines are
    identical: ``line CRLF p1 CRLF line CRLF p2 ... pn CRLF`` is
    ``line + CRLF + (CRLF + line + CRLF).join(payloads) + CRLF``. With a token per
    message, lines and payloads are interleaved and joined with CRLF.
    """
    if isinstance(sizes, bytes):
        line = head + sizes
        return line + b"\r\n" + (b"\r\n" + line + b"\r\n").join(payloads) + b"\r\n"
    parts: list[bytes] = [b""] * (2 * len(payloads))
    parts[0::2] = [head + size for size in sizes]
    parts[1::2] = payloads
    return b"\r\n".join(parts) + b"\r\n"


def _each(sizes: bytes | list[bytes], count: int) -> list[bytes]:
    """The size token of every message of a run."""
    return [sizes] * count if isinstance(sizes, bytes) else sizes


def _stranded(groups: tuple[QueueGroup, ...], names: tuple[bytes, ...]) -> bool:
    """Whether a named group has no member on this shard (a stale pick: pass it on)."""
    return any(not group.local for group in groups if group.name in names)


def _limited_member(groups: tuple[QueueGroup, ...], names: tuple[bytes, ...] = ()) -> bool:
    """Whether a local member of the groups (of those named, when names are given) has
    a limit (UNSUB max, SUB max=): read now, since a limit changes no match."""
    return any(
        sub.max for group in groups if not names or group.name in names for sub in group.local
    )


class Router:
    """Delivers messages on one shard; the server owns it and the state it uses."""

    __slots__ = (
        "accounts",
        "batches",
        "max_frame",
        "pending",
        "plans",
        "responses",
        "sublist_for",
        "sublists",
        "unsubscribe",
    )

    def __init__(self, server: Any) -> None:
        self.sublists = server.sublists
        self.sublist_for = server.sublist_for
        # Per account, the plans the publish loop routes by (core/publoop.py); dropped
        # whole when subscriptions' delivery checks may have changed (a reload).
        self.plans: dict[bytes, Plans] = {}
        # Per-peer frame lists of the mesh, committed at the end of the read batch.
        self.batches: list[list[bytes]] = server.mesh.batches
        self.max_frame: int = server.mesh.max_commit
        # Clients with output waiting for the end of the read batch.
        self.pending: set[Subscriber] = server.pending
        self.unsubscribe = server.remove_subscription
        # Stream imports by exporting account, service imports by importing account
        # (security/accounts.py); the worker's service-import mappings (responses.py)
        # are set by the server.
        self.accounts = AccountRoutes(server.opts)
        self.responses: Any = None

    def deliver(
        self,
        subs: tuple[Subscription, ...] | list[Subscription],
        publisher: Subscriber | None,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
    ) -> int:
        """Write the message to local subscriptions; returns how many got it."""
        msg_tail, hmsg_tail = _tails(reply, header_size, message, size_token)
        msg_head = b"MSG " + subject + b" "
        hmsg_head = b"HMSG " + subject + b" "
        pending = self.pending
        count = 0
        size = len(message)
        for sub in subs:
            client = sub.client
            if not client.echo and client is publisher:
                continue
            if hmsg_tail is not None and client.headers:
                client.out += (hmsg_head, sub.sid, hmsg_tail)
            else:
                client.out += (msg_head, sub.sid, msg_tail)
            client.out_msgs += 1
            client.out_bytes += size
            pending.add(client)
            count += 1
            sub.delivered += 1
            if sub.max and sub.delivered >= sub.max:
                self.unsubscribe(sub)
        return count

    def deliver_checked(
        self,
        subs: tuple[Subscription, ...],
        publisher: Subscriber | None,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
    ) -> int:
        """`deliver` for subscriptions with permission checks (nats deliverMsg): skip
        what the subscriber's deny list keeps from it, grant a response to a reply."""
        count = 0
        for sub in subs:
            client = sub.client
            if sub.checked & CHECK_INTERNAL:
                if client.internal_message(sub, subject, reply, header_size, message):
                    count += 1
                continue
            if not client.echo and client is publisher:
                continue
            perms = client.perms
            assert perms is not None
            if sub.checked & CHECK_DENY and perms.delivery_denied(subject, sub.queue):
                continue
            if not self.deliver(
                (sub,), publisher, subject, reply, header_size, message, size_token
            ):
                continue
            count += 1
            grants = client.grants
            if reply is not None and grants is not None:
                grants.on_delivery(perms, reply, time.monotonic())
        return count

    def deliver_member(
        self,
        group: QueueGroup,
        member: Subscription,
        publisher: Subscriber | None,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
    ) -> bool:
        """Hand a message to a picked local queue member. A member that may not have it
        passes it on to the group's other local members in turn, as nats-server does."""
        if not member.checked:
            return (
                self.deliver((member,), publisher, subject, reply, header_size, message, size_token)
                > 0
            )
        args = (publisher, subject, reply, header_size, message, size_token)
        if self.deliver_checked((member,), *args):
            return True
        for other in group.local:
            if other is member:
                continue
            if other.checked:
                if self.deliver_checked((other,), *args):
                    return True
            elif self.deliver((other,), *args):
                return True
        return False

    def process_msg_results(
        self,
        publisher: Subscriber,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
    ) -> bool:
        """Route a message a local client published. True if anyone may receive it.

        Hot path: plain subscribers and peers without headers join their bytes here;
        headers and queue groups take the general path.
        """
        sublist = self.sublists.get(account)
        if sublist is None:
            return False
        result: RouteResult = sublist.match(subject)
        if result.empty:
            return False
        targets = result.targets
        if targets is None or result.prepared_for != subject:
            targets = result.prepare(account, subject)
        if header_size or size_token is None or result.checked:
            return self._route_general(
                result, publisher, account, subject, reply, header_size, message, size_token
            )
        delivered = False
        if reply is None:
            tail = b"".join((b" ", size_token, b"\r\n", message, b"\r\n"))
        else:
            tail = b"".join((b" ", reply, b" ", size_token, b"\r\n", message, b"\r\n"))
        if targets:
            pending = self.pending
            size = len(message)
            for sub, client, prefix in targets:
                if client is publisher and not client.echo:
                    continue
                client.out.append(prefix + tail)
                client.out_msgs += 1
                client.out_bytes += size
                pending.add(client)
                delivered = True
                sub.delivered += 1
                if sub.max and sub.delivered >= sub.max:
                    self.unsubscribe(sub)
        if result.queues:
            return self._route_queues(
                result, publisher, account, subject, reply, 0, message, size_token, delivered
            )
        peers = result.peers
        if peers:
            frame = result.rmsg_prefix + tail[1:]
            batches = self.batches
            for peer in peers:
                batches[peer].append(frame)
            return True
        return delivered

    def _route_general(
        self,
        result: RouteResult,
        publisher: Subscriber,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
    ) -> bool:
        delivered = False
        if result.local:
            delivered = (
                self.deliver(
                    result.local, publisher, subject, reply, header_size, message, size_token
                )
                > 0
            )
        if result.checked and self.deliver_checked(
            result.checked, publisher, subject, reply, header_size, message, size_token
        ):
            delivered = True
        if result.queues:
            return self._route_queues(
                result,
                publisher,
                account,
                subject,
                reply,
                header_size,
                message,
                size_token,
                delivered,
            )
        if result.peers:
            frame = frames.rmsg(account, subject, reply, (), header_size, message)
            batches = self.batches
            for peer in result.peers:
                batches[peer].append(frame)
            return True
        return delivered

    def _route_queues(
        self,
        result: RouteResult,
        publisher: Subscriber,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
        delivered: bool,
    ) -> bool:
        """Queue groups (after plain local delivery): one member per group, broker-wide."""
        picked: dict[int, list[bytes]] = {peer: [] for peer in result.peers}
        for group in result.queues:
            member = group.pick()
            if type(member) is RemoteInterest:
                picked.setdefault(member.peer, []).append(group.name)
                continue
            if member.client is publisher and not publisher.echo:
                # The publisher does not hear itself: try another local member.
                others = [s for s in group.local if s.client is not publisher]
                if not others:
                    remote = [m for m in group.members if type(m) is RemoteInterest]
                    if remote:
                        picked.setdefault(remote[0].peer, []).append(group.name)
                    continue
                member = others[int(random() * len(others))]
            if group.checked:
                if self.deliver_member(
                    group, member, publisher, subject, reply, header_size, message, size_token
                ):
                    delivered = True
            elif self.deliver(
                (member,), publisher, subject, reply, header_size, message, size_token
            ):
                delivered = True
        batches = self.batches
        for peer, queues in picked.items():
            batches[peer].append(frames.rmsg(account, subject, reply, queues, header_size, message))
            delivered = True
        return delivered

    def plans_for(self, account: bytes) -> Plans:
        """The plans of an account's subjects, for the publish loop."""
        plans = self.plans.get(account)
        if plans is None:
            sublist = self.sublist_for(account)
            if self.crosses_accounts(account):
                # Subjects of imports take the general path (the account routes
                # below); no plan is shared under a prefix, since what decides an
                # import is not the sublist's shape.
                accounts = self.accounts
                mappings = accounts.mappings.get(account)

                def build(subject: bytes) -> Plan | None:
                    if (
                        (mappings is not None and mappings.matches(subject))
                        or accounts.stream_targets(account, subject)
                        or accounts.service_target(account, subject)
                    ):
                        return None
                    return self._plan(sublist, account, subject)

                plans = self.plans[account] = CorePlans(sublist, build, account, None)
            else:

                def build(subject: bytes) -> Plan | None:
                    return self._plan(sublist, account, subject)

                share = sublist.shared_prefix
                plans = self.plans[account] = CorePlans(sublist, build, account, share)
        return plans

    def set_accounts(self, accounts: AccountRoutes) -> None:
        """New imports (a reload): every plan goes; clients rebind their routes."""
        self.accounts = accounts
        self.plans.clear()

    def crosses_accounts(self, account: bytes) -> bool:
        """Do messages published in `account` take more than its own subscriptions: a
        subject mapping, a stream it exports that others import, a service it imports?"""
        accounts = self.accounts
        return (
            account in accounts.streams
            or account in accounts.services
            or account in accounts.mappings
        )

    def routes_for(self, account: bytes) -> tuple[Any, Any, Any]:
        """The message, run and block routes for a client of `account`: the plain ones,
        or, for an account whose messages cross into others, the ones that follow
        its imports."""
        if self.crosses_accounts(account):
            return self.process_account_msg, self.process_account_run, self.process_account_block
        return self.process_msg_results, self.process_msg_run, self.process_msg_block

    def process_account_msg(
        self,
        publisher: Subscriber,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
    ) -> bool:
        """The subject mapped (if a mapping takes it), process_msg_results, then the same
        message in each account importing it as a stream, and through the service import
        that takes its subject, if any."""
        mappings = self.accounts.mappings.get(account)
        if mappings is not None:
            mapped = mappings.map(subject, random())
            if mapped is not None:
                if not mapped:
                    return False  # a weighted mapping's share that is dropped
                subject = mapped
        delivered = self.process_msg_results(
            publisher, account, subject, reply, header_size, message, size_token
        )
        for importer, local in self.accounts.stream_targets(account, subject):
            route = self.routes_for(importer)[0]
            if route(publisher, importer, local, reply, header_size, message, size_token):
                delivered = True
        if (
            account in self.accounts.services or subject.startswith(SYSTEM_PREFIX)
        ) and self.responses.request(publisher, account, subject, reply, header_size, message):
            delivered = True
        return delivered

    def process_account_run(
        self,
        publisher: Subscriber,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> bool:
        """process_msg_run, then the run in each account importing it as a stream, and
        each message through a service import. A mapped subject: message by message (a
        weighted mapping draws for each)."""
        mappings = self.accounts.mappings.get(account)
        if mappings is not None and mappings.matches(subject):
            delivered = False
            each = [sizes] * len(payloads) if isinstance(sizes, bytes) else sizes
            for payload, size in zip(payloads, each, strict=True):
                if self.process_account_msg(publisher, account, subject, reply, 0, payload, size):
                    delivered = True
            return delivered
        delivered = self.process_msg_run(publisher, account, subject, reply, payloads, sizes)
        for importer, local in self.accounts.stream_targets(account, subject):
            route_run = self.routes_for(importer)[1]
            if route_run(publisher, importer, local, reply, payloads, sizes):
                delivered = True
        if account in self.accounts.services:
            request = self.responses.request
            for payload in payloads:
                if request(publisher, account, subject, reply, 0, payload):
                    delivered = True
        return delivered

    def process_account_block(
        self,
        publisher: Subscriber,
        account: bytes,
        subject: bytes,
        block: bytes,
        head: bytes,
        count: int,
        size_token: bytes,
    ) -> bool:
        """process_msg_block, then the block in each account importing it as a stream,
        and each message through a service import. A mapped subject goes as a run."""
        mappings = self.accounts.mappings.get(account)
        if mappings is not None and mappings.matches(subject):
            payloads = block_payloads(block, len(head), count, int(size_token))
            return self.process_account_run(publisher, account, subject, None, payloads, size_token)
        delivered = self.process_msg_block(
            publisher, account, subject, block, head, count, size_token
        )
        for importer, local in self.accounts.stream_targets(account, subject):
            route_block = self.routes_for(importer)[2]
            if route_block(publisher, importer, local, block, head, count, size_token):
                delivered = True
        if account in self.accounts.services:
            request = self.responses.request
            for payload in block_payloads(block, len(head), count, int(size_token)):
                if request(publisher, account, subject, None, 0, payload):
                    delivered = True
        return delivered

    def drop_plans(self, account: bytes) -> None:
        """A subscription went away: drop the account's plans now, so that none keeps
        its connection alive until the account's next message."""
        plans = self.plans.get(account)
        if plans is not None:
            plans.clear()

    @staticmethod
    def _plan(sublist: Any, account: bytes, subject: bytes) -> Plan | None:
        """A subject's plan (core/publoop.py), or None when its messages need the
        general path: deliveries checked one by one."""
        result: RouteResult = sublist.match(subject)
        if result.empty:
            return _NO_INTEREST
        if result.checked or result.checked_queues:
            return None
        if not result.local and not result.queues:
            # Peers only (JetStream acks to the storage shard, say): a plan that names
            # no subject, so that Plans can share it (core/plans.py).
            return (), result.peers, b"", ()
        targets = result.prepare(account, subject)
        rmsg_prefix = result.rmsg_prefix  # prepare made it, for this subject
        if not result.queues:
            return targets, result.peers, rmsg_prefix, ()
        head = b"MSG " + subject + b" "
        queues = []
        for group in result.queues:
            local = tuple((sub, sub.client, head + sub.sid) for sub in group.local)
            remote = tuple(m.peer for m in group.members[len(local) :])
            queues.append(
                queue_plan(group.name, local + remote, group.cumulative, group.total, local)
            )
        return targets, result.peers, rmsg_prefix, tuple(queues)

    def has_interest(self, account: bytes, subject: bytes) -> bool:
        """Would a message on `subject` in `account` reach anybody (here or a peer)?"""
        return self._match(account, subject) is not None

    def _match(self, account: bytes, subject: bytes) -> RouteResult | None:
        """The route result for a subject, or None when nobody is interested."""
        sublist = self.sublists.get(account)
        if sublist is None:
            return None
        result: RouteResult = sublist.match(subject)
        return None if result.empty else result

    def _prepared_match(self, account: bytes, subject: bytes) -> RouteResult | None:
        """The route result for a subject with its delivery prefixes, or None when
        nobody is interested. (The per-message paths inline this to save a call.)"""
        result = self._match(account, subject)
        if result is None:
            return None
        if result.targets is None or result.prepared_for != subject:
            result.prepare(account, subject)
        return result

    def process_msg_run(
        self,
        publisher: Subscriber,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> bool:
        """Route consecutive messages with one subject and reply (a run).

        ``sizes`` is one size token when every control line was identical, else one
        token per message. Each destination gets the whole run as one join (see
        ``run_blob``). Queue groups pick all their members at once; subscriptions with
        an UNSUB max, a publisher with echo off next to a queue group, queue groups
        with sizes that vary and queue groups with a limited member (whose share past
        its limit must go to the others) go message by message."""
        result = self._prepared_match(account, subject)
        if result is None:
            return False
        uniform = type(sizes) is bytes
        if result.queues and (
            result.peers
            or not publisher.echo
            or not uniform
            or result.checked_queues
            or _limited_member(result.queues)
        ):
            # A peer with plain interest must get each message in one RMSG together
            # with the queues picked for it: message by message.
            delivered = False
            for payload, size in zip(payloads, _each(sizes, len(payloads)), strict=True):
                if self.process_msg_results(publisher, account, subject, reply, 0, payload, size):
                    delivered = True
            return delivered
        targets = result.targets
        assert targets is not None
        reply_part = reply + b" " if reply is not None else b""
        delivered = self._deliver_run(
            targets, publisher, subject, reply, reply_part, payloads, sizes
        )
        if result.checked:
            for payload, size in zip(payloads, _each(sizes, len(payloads)), strict=True):
                if self.deliver_checked(
                    result.checked, publisher, subject, reply, 0, payload, size
                ):
                    delivered = True
        if result.queues:
            # One size token: a run with queue groups and varying sizes went message by
            # message above.
            assert isinstance(sizes, bytes)
            for group in result.queues:
                self._queue_run(
                    group, group.members, group.cumulative, account, subject, reply, payloads, sizes
                )
            return True
        if result.peers:
            run_frames = self._run_frames(result.rmsg_prefix + reply_part, payloads, sizes)
            batches = self.batches
            for peer in result.peers:
                batches[peer] += run_frames
            return True
        return delivered

    def process_msg_block(
        self,
        publisher: Subscriber,
        account: bytes,
        subject: bytes,
        block: bytes,
        head: bytes,
        count: int,
        size_token: bytes,
    ) -> bool:
        """Route a block: `count` identical large PUBs (no reply) as the bytes read.

        Each destination gets the block with the PUB line replaced by its own, joined
        from views of the payloads (see block_tails): one copy, where cutting the
        payloads out and joining them again took two. Queue groups, checked
        deliveries and UNSUB maxima go the way of runs.
        """
        result = self._prepared_match(account, subject)
        if result is None:
            return False
        targets = result.targets
        assert targets is not None
        size = int(size_token)
        if result.queues or result.checked or any(sub.max for sub, _, _ in targets):
            payloads = block_payloads(block, len(head), count, size)
            return self.process_msg_run(publisher, account, subject, None, payloads, size_token)
        tails = block_tails(block, len(head), count, size)
        delivered = self._deliver_block(targets, publisher, tails, size_token, count, size)
        if result.peers:
            line = result.rmsg_prefix + size_token + b"\r\n"
            blob = line.join(tails)
            record = len(line) + size + 2
            most = max(1, self.max_frame // record) * record
            run_frames = (
                [blob]
                if len(blob) <= most
                else [blob[i : i + most] for i in range(0, len(blob), most)]
            )
            batches = self.batches
            for peer in result.peers:
                batches[peer] += run_frames
            return True
        return delivered

    def _deliver_block(
        self,
        targets: tuple[tuple[Subscription, Subscriber, bytes], ...],
        publisher: Subscriber | None,
        tails: list[Any],
        size_token: bytes,
        count: int,
        size: int,
    ) -> bool:
        """A block (see block_tails) to each local target with its own MSG line, as
        _deliver_run does for a run; the caller has ruled out UNSUB maxima."""
        delivered = False
        line_end = b" " + size_token + b"\r\n"
        pending = self.pending
        for sub, client, prefix in targets:
            if client is publisher and not client.echo:
                continue
            delivered = True
            client.out.append((prefix + line_end).join(tails))
            client.out_msgs += count
            client.out_bytes += count * size
            pending.add(client)
            sub.delivered += count
        return delivered

    def _run_frames(
        self, head: bytes, payloads: list[bytes], sizes: bytes | list[bytes]
    ) -> list[bytes]:
        """A run as ring frames, cut so no piece outgrows what one ring commit may hold
        (a single message is never cut)."""
        per_message = len(head) + 13 + max(map(len, payloads))
        most = max(1, self.max_frame // per_message)
        if len(payloads) <= most:
            return [run_blob(head, payloads, sizes)]
        return [
            run_blob(
                head, payloads[i : i + most], sizes if type(sizes) is bytes else sizes[i : i + most]
            )
            for i in range(0, len(payloads), most)
        ]

    def _queue_run(
        self,
        group: QueueGroup,
        members: tuple[Any, ...],
        cumulative: list[float] | None,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        payloads: list[bytes],
        size: bytes,
    ) -> None:
        """One member per message for a whole run of identical lines: pick them all at
        once, then send each member (or peer) its share as one join."""
        if len(members) == 1:
            buckets: dict[Any, list[bytes]] = {members[0]: payloads}
        else:
            picks = choices(members, cum_weights=cumulative, k=len(payloads))
            buckets = {}
            for member, payload in zip(picks, payloads, strict=True):
                bucket = buckets.get(member)
                if bucket is None:
                    buckets[member] = [payload]
                else:
                    bucket.append(payload)
        reply_part = reply + b" " if reply is not None else b""
        for member, share in buckets.items():
            if type(member) is RemoteInterest:
                if reply is None:
                    head = b"RMSG " + account + b" " + subject + b" | " + group.name + b" "
                else:
                    head = b"RMSG %s %s + %s %s " % (account, subject, reply, group.name)
                self.batches[member.peer] += self._run_frames(head, share, size)
            else:
                prefix = b"MSG " + subject + b" " + member.sid
                self._deliver_run(
                    ((member, member.client, prefix),),
                    None,
                    subject,
                    reply,
                    reply_part,
                    share,
                    size,
                )

    def _deliver_run(
        self,
        targets: tuple[tuple[Subscription, Subscriber, bytes], ...],
        publisher: Subscriber | None,
        subject: bytes,
        reply: bytes | None,
        reply_part: bytes,
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> bool:
        delivered = False
        count = len(payloads)
        run_bytes = -1
        pending = self.pending
        for sub, client, prefix in targets:
            if client is publisher and not client.echo:
                continue
            delivered = True
            if sub.max:
                # Stop exactly at the UNSUB max: one message at a time.
                for payload, size in zip(payloads, _each(sizes, count), strict=True):
                    if client.subs.get(sub.sid) is not sub:
                        break
                    self.deliver((sub,), publisher, subject, reply, 0, payload, size)
                continue
            client.out.append(run_blob(prefix + b" " + reply_part, payloads, sizes))
            client.out_msgs += count
            if run_bytes < 0:
                run_bytes = sum(map(len, payloads))
            client.out_bytes += run_bytes
            pending.add(client)
            sub.delivered += count
        return delivered

    def process_remote_run(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> None:
        """A run of RMSG frames from a peer (see process_msg_run)."""
        result = self._prepared_match(account, subject)
        if result is None:
            return
        targets = result.targets
        assert targets is not None
        if targets:
            reply_part = reply + b" " if reply is not None else b""
            self._deliver_run(targets, None, subject, reply, reply_part, payloads, sizes)
        if result.checked:
            for payload, size in zip(payloads, _each(sizes, len(payloads)), strict=True):
                self.deliver_checked(result.checked, None, subject, reply, 0, payload, size)
        if queues:
            if _limited_member(result.queues, queues) or _stranded(result.queues, queues):
                # A member's share past its limit goes to the others, and a group without
                # a member here passes its messages on: message by message.
                for payload, size in zip(payloads, _each(sizes, len(payloads)), strict=True):
                    now = self._match(account, subject)
                    if now is not None:
                        self._deliver_picked(now, account, queues, subject, reply, 0, payload, size)
                return
            for group in result.queues:
                if group.name not in queues or not group.local:
                    continue
                if group.checked:
                    for payload, size in zip(payloads, _each(sizes, len(payloads)), strict=True):
                        member = group.pick_local()
                        if member is not None:
                            self.deliver_member(
                                group, member, None, subject, reply, 0, payload, size
                            )
                    continue
                if isinstance(sizes, bytes):
                    self._queue_run(
                        group, group.local, None, account, subject, reply, payloads, sizes
                    )
                    continue
                for payload, size in zip(payloads, sizes, strict=True):
                    member = group.pick_local()
                    if member is not None:
                        self.deliver((member,), None, subject, reply, 0, payload, size)

    def process_remote_block(
        self,
        account: bytes,
        subject: bytes,
        block: bytes,
        head: bytes,
        count: int,
        size_token: bytes,
    ) -> None:
        """A block of identical RMSGs from a peer: local subscribers get it with their
        MSG line in place of the RMSG line (as process_msg_block); the rest as a run."""
        result = self._prepared_match(account, subject)
        if result is None:
            return
        targets = result.targets
        assert targets is not None
        size = int(size_token)
        if result.checked or any(sub.max for sub, _, _ in targets):
            payloads = block_payloads(block, len(head), count, size)
            self.process_remote_run(account, subject, None, (), payloads, size_token)
            return
        if targets:
            tails = block_tails(block, len(head), count, size)
            self._deliver_block(targets, None, tails, size_token, count, size)

    def process_remote_msg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        header_size: int,
        message: bytes,
        size_token: bytes,
    ) -> None:
        """Deliver a message a peer forwarded: to every local plain subscription, and
        to one local member of each queue group the peer picked us for."""
        sublist = self.sublists.get(account)
        if sublist is None:
            return
        result: RouteResult = sublist.match(subject)
        if result.empty:
            return
        targets = result.targets
        if targets is None or result.prepared_for != subject:
            targets = result.prepare(account, subject)
        if targets:
            if header_size:
                self.deliver(result.local, None, subject, reply, header_size, message, None)
            else:
                if reply is None:
                    tail = b"".join((b" ", size_token, b"\r\n", message, b"\r\n"))
                else:
                    tail = b"".join((b" ", reply, b" ", size_token, b"\r\n", message, b"\r\n"))
                pending = self.pending
                size = len(message)
                for sub, client, prefix in targets:
                    client.out.append(prefix + tail)
                    client.out_msgs += 1
                    client.out_bytes += size
                    pending.add(client)
                    sub.delivered += 1
                    if sub.max and sub.delivered >= sub.max:
                        self.unsubscribe(sub)
        if result.checked:
            self.deliver_checked(result.checked, None, subject, reply, header_size, message, None)
        if queues:
            self._deliver_picked(
                result, account, queues, subject, reply, header_size, message, None
            )

    def _deliver_picked(
        self,
        result: RouteResult,
        account: bytes,
        queues: tuple[bytes, ...],
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
    ) -> None:
        """One local member of each queue group a peer picked this shard for; a group
        whose members here are gone passes the message on."""
        for group in result.queues:
            if group.name in queues:
                member = group.pick_local()
                if member is None:
                    self._pass_on(group, account, subject, reply, header_size, message, 1)
                    continue
                args = (None, subject, reply, header_size, message, size_token)
                if group.checked:
                    self.deliver_member(group, member, *args)
                else:
                    self.deliver((member,), *args)

    def process_remote_queue_msg(
        self,
        account: bytes,
        subject: bytes,
        queue: bytes,
        hops: int,
        reply: bytes | None,
        header_size: int,
        message: bytes,
    ) -> None:
        """A queue group's message another shard passed on (a QMSG): one local member
        of the group, or on again."""
        result = self._match(account, subject)
        if result is None:
            return
        for group in result.queues:
            if group.name != queue:
                continue
            member = group.pick_local()
            if member is None:
                self._pass_on(group, account, subject, reply, header_size, message, hops + 1)
            elif group.checked:
                self.deliver_member(group, member, None, subject, reply, header_size, message, None)
            else:
                self.deliver((member,), None, subject, reply, header_size, message, None)
            return

    def _pass_on(
        self,
        group: QueueGroup,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        hops: int,
    ) -> None:
        """To a member of the group on another shard (none is left here), picked by
        weight; dropped after as many hops as there are shards."""
        if hops >= len(self.batches) or not group.members:
            return
        peer = group.pick().peer  # no local member: every member is a peer
        self.batches[peer].append(
            frames.qmsg(account, subject, group.name, hops, reply, header_size, message)
        )

    def process_jetstream_run(
        self, account: bytes, deliver: bytes, entries: list[tuple[bytes, bytes, int, bytes]]
    ) -> None:
        """JetStream deliveries to `deliver` without a queue group (a JRUN frame): each
        local plain subscriber gets them all in one write; anything checked or limited
        goes message by message as JMSGs do."""
        result = self._match(account, deliver)
        if result is None:
            return
        local = result.local
        if result.checked or any(sub.max for sub in local):
            for subject, reply, header_size, message in entries:
                self.process_jetstream_delivery(
                    account, deliver, subject, reply, None, header_size, message
                )
            return
        if not local:
            return
        size = sum(len(message) for _, _, _, message in entries)
        pending = self.pending
        for sub in local:
            client = sub.client
            sid = sub.sid
            if client.headers:
                out = b"".join(
                    [
                        b"HMSG %s %s %s %d %d\r\n%s\r\n"
                        % (subject, sid, reply, header_size, len(message), message)
                        if header_size
                        else b"MSG %s %s %s %d\r\n%s\r\n"
                        % (subject, sid, reply, len(message), message)
                        for subject, reply, header_size, message in entries
                    ]
                )
            else:
                out = b"".join(
                    [
                        b"MSG %s %s %s %d\r\n%s\r\n"
                        % (subject, sid, reply, len(message) - header_size, message[header_size:])
                        for subject, reply, header_size, message in entries
                    ]
                )
            client.out.append(out)
            client.out_msgs += len(entries)
            client.out_bytes += size
            pending.add(client)
            sub.delivered += len(entries)

    def process_jetstream_delivery(
        self,
        account: bytes,
        deliver: bytes,
        subject: bytes,
        reply: bytes,
        queue: bytes | None,
        header_size: int,
        message: bytes,
    ) -> None:
        """A message a JetStream consumer delivers: to the plain subscriptions on its
        deliver subject and, when `queue` names a group, to one member of it; shown with
        the message's own subject and the ack reply."""
        result = self._match(account, deliver)
        if result is None:
            return
        if result.local:
            self.deliver(result.local, None, subject, reply, header_size, message, None)
        if result.checked:
            self.deliver_checked(result.checked, None, subject, reply, header_size, message, None)
        if queue is None:
            return
        for group in result.queues:
            if group.name == queue:
                member = group.pick_local()
                if member is None:
                    return
                if group.checked:
                    self.deliver_member(
                        group, member, None, subject, reply, header_size, message, None
                    )
                else:
                    self.deliver((member,), None, subject, reply, header_size, message, None)
                return
