"""mesh/account_table.py: the account names, and each shard's row of connection counts."""

from __future__ import annotations

import mmap

from shardbroker.mesh.account_table import AccountTable, segment_size


def test_rows_are_summed_over_the_other_shards_and_cleared_per_shard() -> None:
    buf = mmap.mmap(-1, segment_size(3))
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


def test_names_name_the_cells() -> None:
    buf = mmap.mmap(-1, segment_size(2))
    table = AccountTable(buf, 2)
    table.set_names(["A", "B" * 100, "C"])
    assert table.names() == ["A", "B" * 64, "C"]
    table.set(1, 0, 2)
    table.set(0, 2, 1)
    assert table.connections() == {"A": 2, "B" * 64: 0, "C": 1}
    table.set_names(["X"])
    assert table.names() == ["X"]
    table.release()
