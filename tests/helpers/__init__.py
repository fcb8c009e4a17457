"""Helpers for integration and reliability tests: the broker subprocess (broker.py), a
raw-socket client (wire.py) and deadline polling (wait.py)."""
