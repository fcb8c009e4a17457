"""Performance comparison suite: the same scenarios against shardbroker and nats-server.

Standalone on purpose: nothing here imports the `shardbroker` package. The broker is
driven as a black box over the wire, exactly as nats-server is.
"""
