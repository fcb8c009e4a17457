"""mesh/account_table.py: each shard's row of account connection counts."""

from __future__ import annotations

import mmap

from shardbroker.mesh.account_table import ROW_SIZE, AccountTable


def test_rows_are_summed_over_the_other_shards_and_cleared_per_shard() -> None:
    buf = mmap.mmap(-1, 3 * ROW_SIZE)
    table = AccountTable(buf, 3)
    table.set(0, 5, 2)
    table.set(1, 5, 3)
    table.set(2, 5, 4)
    table.set(2, 6, 1)
    assert table.others(1, 5) == 6
    assert table.total(5) == 9
    table.clear_row(2)
    assert table.total(5) == 5 and table.total(6) == 0
    assert table.others(0, 5) == 3
    table.release()
