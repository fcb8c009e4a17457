"""shardbroker: a NATS-compatible message broker that runs as a tree of processes."""

__version__ = "0.1.0"
