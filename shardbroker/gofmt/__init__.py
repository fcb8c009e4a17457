"""Go's text formats, for output that must read exactly as nats-server's.

Owner: pure functions with no state, imported by any process (layer 0: this package imports
nothing from shardbroker). One home per format, so the copies cannot disagree:

- `duration`: ``time.Duration.String`` (``1h0m0s``, ``1.5ms``, ``683µs``);
- `timestamp`: ``time.Time`` as RFC 3339 with nanoseconds, formatting and ``time.Parse``;
- `quote`: ``strconv.Quote`` / ``QuoteRune`` (``%q`` in error texts);
- `strconv`: ``strconv.Atoi`` and its error texts.
"""
