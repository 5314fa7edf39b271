"""`bench.list_query`'s prewarm: which relations go into the own cluster's buffers."""

from __future__ import annotations

from bench.list_query import LISTED, split_for_buffers


def test_a_relation_too_large_for_the_room_left_does_not_keep_the_later_ones_out() -> None:
    # sizes as at ten million sessions (MB): the table does not fit after the B-trees, the
    # session id keys after it do
    mb = 1 << 20
    sizes = dict(zip(LISTED, (966, 1262, 1, 1, 231, 1187, 1072, 2517, 2236, 1265, 97), strict=True))
    sizes = {name: size * mb for name, size in sizes.items()}
    buffered, cached = split_for_buffers(sizes, 7231 * mb)
    assert cached == ["sessions", "ix_sessions_open_ip"]
    assert buffered == [n for n in LISTED if n not in cached]  # in LISTED's order
    assert sum(sizes[n] for n in buffered) <= 7231 * mb


def test_everything_fits_or_nothing_does() -> None:
    sizes = dict.fromkeys(LISTED, 10)
    assert split_for_buffers(sizes, 10 * len(LISTED)) == (list(LISTED), [])
    assert split_for_buffers(sizes, 9) == ([], list(LISTED))
    assert split_for_buffers({"not listed": 1, LISTED[3]: 1}, 5) == ([LISTED[3]], [])
