"""Tools a user runs from the shell that need no running broker, or talk to one only as
a NATS client: the `shardbroker jwt` commands (operator mode without nsc). Layer 4,
beside cli: they never import the supervisor or the shards."""
