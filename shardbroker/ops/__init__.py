"""Commands that act on a running broker from the shell: find it, read its stats,
signal it. Layer 4 (beside cli): they never import the supervisor or the shards."""
