"""Helpers for clients of the broker's protocol extensions. Nothing in the broker imports
this package; its modules may need client libraries the broker does not depend on."""
