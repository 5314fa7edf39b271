"""`bench.list_query`'s prewarm: which relations go into the own cluster's buffers."""

from __future__ import annotations

from bench.list_query import LISTED, split_for_buffers


def test_a_relation_too_large_for_the_room_left_does_not_keep_the_later_ones_out() -> None:
    # sizes as at ten million sessions (MB): after the first nine, the default order's B-tree
    # and the session id keys do not fit, the user names' B-tree after them does
    mb = 1 << 20
    sizes = {
        "sessions": 2517,
        "sessions_pkey": 966,
        "ix_sessions_open_user_name_activity": 1187,
        "ix_sessions_open_ip": 1265,
        "ix_sessions_trgm_device": 198,
        "ix_sessions_open_user_id": 97,
        "ix_sessions_trgm_user_name": 230,
        "listed_user_names": 1,
        "ix_listed_user_names_trgm": 3,
        "ix_sessions_open_last_activity": 1262,
        "ix_sessions_id_activity_keys": 2236,
        "ix_sessions_open_user_name": 1071,
    }
    assert set(sizes) == set(LISTED)
    sizes = {name: size * mb for name, size in sizes.items()}
    buffered, cached = split_for_buffers(sizes, 7600 * mb)
    assert cached == ["ix_sessions_open_last_activity", "ix_sessions_id_activity_keys"]
    assert buffered == [n for n in LISTED if n not in cached]  # in LISTED's order
    assert sum(sizes[n] for n in buffered) <= 7600 * mb


def test_everything_fits_or_nothing_does() -> None:
    sizes = dict.fromkeys(LISTED, 10)
    assert split_for_buffers(sizes, 10 * len(LISTED)) == (list(LISTED), [])
    assert split_for_buffers(sizes, 9) == ([], list(LISTED))
    assert split_for_buffers({"not listed": 1, LISTED[3]: 1}, 5) == ([LISTED[3]], [])
