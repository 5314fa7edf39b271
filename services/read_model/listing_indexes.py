"""The PostgreSQL listing indexes: the one definition a migration and a bulk load both use.

Revision 0101 creates them; a rebuild into an empty database drops them before its replay and
creates them again after it (`PostgresStore.bulk_load`): one sorted build per index instead of
upkeep row by row. Both take these statements, so a rebuilt database has exactly the indexes a
migrated one has. Changing an index here needs a migration that brings existing databases to it
(drop and create it from this module).

Every index is partial on `LISTED` and every sort key ends with the session id compared by code
point (`COLLATE "C"`), as `admin_api.adapters.session_listing` orders. SQLite lists correctly
without them, only slower.
"""

from __future__ import annotations

SORT_KEYS = {
    "last_activity": "last_activity_at",
    "created": "created_at",
    "expires": "expires_at",
    "user_name": 'user_name COLLATE "C"',
    "session_type": 'session_type COLLATE "C"',
    "ip": "ip_packed",
    "device": "(coalesce(device, '')) COLLATE \"C\"",
}
TRIGRAM_COLUMNS = ("user_name", "device")
# Exactly the literal conditions of `read_model.active.listed_condition` and its neighbours, so
# the planner can prove every list query implies it; other session types never enter the indexes.
LISTED = "state = 'open' AND created_at IS NOT NULL AND session_type IN ('browser', 'mobile')"
# The session id's own index (revision 0801): every three characters of an id, lowered, each
# hashed with the tenant's id in front (`hashtext('<tenant>/<piece>')`), so that a key's
# posting list holds the ids of one tenant only. A term of three characters or more is looked
# up by its own keys (`read_model.session_query.session_id_holds`): `@>` gives the tenant's
# ids holding every piece of it, and the `ILIKE` that follows (on the heap page) those that
# hold the term, and no other tenant's (a key that two pieces hash to only adds candidates).
# The trigram index of the ids before revision 0801 gave every tenant's ids holding the
# piece, each tested on its heap page: at a million sessions 1,275 candidates for the
# tenant's 487; with the tenant as a second column of it, the tenant's whole posting list.
#
# Integers, not the `<tenant>/<piece>` text: the keys of every tenant are as many as the
# tenants times the pieces, and a GIN compares and stores them on every insert. Text keys
# cost 37-44% more than the trigram index to insert (5 and 50 tenants, 100,000 rows into
# 500,000, a bare table) and grow with the tenant id; integers 7-20% more there, 4 bytes
# each, and on the real schema 14% less than the trigram index (docs/registry.md). `lower` is the
# database's, as `ILIKE`'s, and a term's keys are computed in SQL by the same function,
# never in Python, so both sides lower alike; it is `IMMUTABLE`, so the planner computes a
# term's keys once from its bound value (a constant array). Changing the function changes
# the keys: it needs a revision that rebuilds the index.
#
# No statistics of the expression: the keys are all about equally rare (a tenant's piece is
# in one of its ids of 800 to 6,500), so `ANALYZE` keeps no most common elements of them
# (tried, at a million sessions), and the planner takes any term's keys for 0.5% of the
# rows: few enough that it reads them through the index at every size.
SESSION_ID_KEYS = "session_id_keys"
KEYS_FUNCTION = f"""CREATE OR REPLACE FUNCTION {SESSION_ID_KEYS}(tenant text, id text)
RETURNS integer[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY(
    SELECT hashtext(tenant || '/' || substr(lowered, at, 3))
    FROM lower(id) AS lowered, generate_series(1, length(lowered) - 2) AS at
)"""
KEYS_EXPRESSION = f"{SESSION_ID_KEYS}(tenant_id, session_id)"
# The keys a term is looked up by (revision 1201): its first and last pieces, of the keys
# `KEYS_FUNCTION` gives it (so they are hashed exactly as the ids' are). Every id holding the
# term holds both, and the `ILIKE` after the lookup keeps those that hold the term itself. A
# GIN reads each key's posting list whole, about 0.15 ms each at ten million sessions, and
# the pieces in between narrow nothing: two random pieces are together in about one id of
# two million, a few candidates in a tenant of four million, against a heap page each
# (`jennifer`, six keys: 0.8-1.1 ms; its two: 0.35-0.5 ms with 2 candidates).
SESSION_ID_TERM_KEYS = "session_id_term_keys"
TERM_KEYS_FUNCTION = f"""CREATE OR REPLACE FUNCTION {SESSION_ID_TERM_KEYS}(tenant text, term text)
RETURNS integer[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY(
    SELECT DISTINCT k
    FROM {SESSION_ID_KEYS}(tenant, term) AS keys,
        unnest(ARRAY[keys[1], keys[cardinality(keys)]]) AS k
    WHERE k IS NOT NULL
)"""
# Each session's coarse last activity, beside its id's keys (revision 1101): the ten minutes
# its last activity falls in (`ACTIVITY_BUCKET_SECONDS`), hashed with the tenant's id, in the
# index's second column. A term in thousands of a large tenant's ids is read through its keys
# and the newest few buckets only (`session_activity_window`): the GIN intersects the piece's
# posting list with the buckets' inside the index, so the first page in the default order
# costs a heap page per match of those ten-minute windows, not one per match in the tenant
# (`admin_api.adapters.session_search._by_activity`). Every activity already writes a new
# row version into every index (`last_activity_at` is a key of the sort B-trees, so no update
# is HOT): one key more of the 42 is all the bucket costs a write. The functions compute
# the bucket from the time alone (seconds since 1970 in UTC, whatever the session's
# `TimeZone`), so they are `IMMUTABLE`; changing them needs a revision that rebuilds the index.
ACTIVITY_BUCKET_SECONDS = 600
INFINITE_BUCKET = 2**62
"""The bucket of an infinite last activity (`-` it for minus infinity): later (earlier) than
every finite one's, and far from the `bigint` range's ends, so a window next to it never
overflows. PostgreSQL cannot subtract an infinite time, and a hostile `9999-12-31T23:59:59.
999999Z` is stored as `infinity` (asyncpg's encoding of `datetime.max`): without it the
index's expression failed, and the registry dead-lettered the event."""
ACTIVITY_BUCKET = "session_activity_bucket"
ACTIVITY_KEYS = "session_activity_keys"
ACTIVITY_WINDOW = "session_activity_window"
ACTIVITY_FUNCTIONS = (
    f"""CREATE OR REPLACE FUNCTION {ACTIVITY_BUCKET}(at timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN at = timestamptz 'infinity' THEN {INFINITE_BUCKET}
    WHEN at = timestamptz '-infinity' THEN -{INFINITE_BUCKET}
    ELSE floor(extract(epoch FROM at - timestamptz '1970-01-01 00:00:00+00')
        / {ACTIVITY_BUCKET_SECONDS})
END""",
    f"""CREATE OR REPLACE FUNCTION {ACTIVITY_KEYS}(tenant text, at timestamptz)
RETURNS integer[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY[hashtext(tenant || '@' || {ACTIVITY_BUCKET}(at))]""",
    f"""CREATE OR REPLACE FUNCTION {ACTIVITY_WINDOW}(tenant text, first bigint, last bigint)
RETURNS integer[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY(
    SELECT hashtext(tenant || '@' || bucket) FROM generate_series(first, last) AS bucket
)""",
)
ACTIVITY_EXPRESSION = f"{ACTIVITY_KEYS}(tenant_id, last_activity_at)"
KEYS_INDEX_NAME = "ix_sessions_id_activity_keys"
KEYS_INDEX = (
    f"CREATE INDEX {KEYS_INDEX_NAME} ON sessions "
    f"USING gin ({KEYS_EXPRESSION}, {ACTIVITY_EXPRESSION}) WHERE {LISTED}"
)
ID_KEYS_INDEX_NAME = "ix_sessions_session_id_keys"
"""Revision 0801's index of the id's keys alone, which `KEYS_INDEX` replaces (its first
column is the same expression, so every lookup by the id's keys is answered by either)."""
ID_KEYS_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {ID_KEYS_INDEX_NAME} ON sessions "
    f"USING gin ({KEYS_EXPRESSION}) WHERE {LISTED}"
)
"""`ID_KEYS_INDEX_NAME`, as revision 1101's downgrade builds it again."""
# What a search's bounded walk reads besides the key (`admin_api.adapters.session_search`):
# whether the session is still active (expires_at > now) and what `q` compares (user name,
# session type; the session id is a key column of every index). With them in the index the
# walk is an index-only scan that never visits the table. Counting the active sessions of a
# tenant reads only the `expires` index.
SEARCHED = ("expires_at", "session_type", "user_name")
# pg_trgm for the trigram operator class; btree_gin puts the tenant into the trigram index, so a
# search reads only the tenant's rows
EXTENSIONS = ("pg_trgm", "btree_gin")

# The directory of listed user names (revision 0501): one row per tenant and name, its own
# trigram index. Not a listing index: small, kept through a bulk load.
USER_NAMES_TABLE = (
    "CREATE TABLE listed_user_names (tenant_id VARCHAR(64) NOT NULL, "
    "user_name VARCHAR(256) NOT NULL, PRIMARY KEY (tenant_id, user_name))"
)
USER_NAMES_TRIGRAM = (
    "CREATE INDEX ix_listed_user_names_trgm ON listed_user_names "
    "USING gin (tenant_id, user_name gin_trgm_ops)"
)
# Each name lowered once, as `ILIKE` lowers it on every comparison (revision 0701): a term
# the trigram index cannot look up (one or two characters, `ü`) is matched with `LIKE` on it,
# the tenant's names read from an index that holds both (`admin_api.adapters.session_search`).
USER_NAMES_FOLDED = (
    "ALTER TABLE listed_user_names ADD COLUMN user_name_folded TEXT "
    "GENERATED ALWAYS AS (lower(user_name)) STORED"
)
USER_NAMES_FOLDED_INDEX = (
    "CREATE INDEX ix_listed_user_names_folded ON listed_user_names "
    "(tenant_id) INCLUDE (user_name_folded, user_name)"
)

NAMES: tuple[str, ...] = (
    *(f"ix_sessions_open_{name}" for name in (*SORT_KEYS, "session_id")),
    *(f"ix_sessions_trgm_{column}" for column in TRIGRAM_COLUMNS),
    KEYS_INDEX_NAME,
    "ix_sessions_open_user_id",
    "ix_sessions_open_user_name_activity",
)
"""The indexes `create_statements` creates, in its order."""


SORT_NAMES: tuple[str, ...] = NAMES[: len(SORT_KEYS) + 1]
"""The B-tree indexes, one per sort key and the session id's."""


def _include(key: str) -> str:
    return f" INCLUDE ({', '.join(c for c in SEARCHED if not key.startswith(c))})"


def sort_statements() -> list[str]:
    """`CREATE INDEX` of the B-tree indexes (`SORT_NAMES`), in their order."""
    sort_indexes = [
        f"CREATE INDEX ix_sessions_open_{name} ON sessions "
        f'(tenant_id, {key}, session_id COLLATE "C"){_include(key)} WHERE {LISTED}'
        for name, key in SORT_KEYS.items()
    ]
    by_id = (
        'CREATE INDEX ix_sessions_open_session_id ON sessions (tenant_id, session_id COLLATE "C")'
        f"{_include('session_id')} WHERE {LISTED}"
    )
    return [*sort_indexes, by_id]


def trigram_statement(column: str) -> str:
    """`CREATE INDEX` of the trigram index of `column` (one of `TRIGRAM_COLUMNS`)."""
    return (
        f"CREATE INDEX ix_sessions_trgm_{column} ON sessions "
        f"USING gin (tenant_id, {column} gin_trgm_ops) WHERE {LISTED}"
    )


def create_statements() -> list[str]:
    """`CREATE INDEX` of every listing index, after the functions the keys index
    computes its keys with (the extensions must exist)."""
    trigram_indexes = [trigram_statement(column) for column in TRIGRAM_COLUMNS]
    return [
        KEYS_FUNCTION,
        *ACTIVITY_FUNCTIONS,
        *sort_statements(),
        *trigram_indexes,
        KEYS_INDEX,
        BY_USER,
        BY_NAME_ACTIVITY,
    ]


BY_USER = f"CREATE INDEX ix_sessions_open_user_id ON sessions (tenant_id, user_id) WHERE {LISTED}"
"""The list's exact `user_id` condition (all the sessions of one user), since revision 0401."""
BY_NAME_ACTIVITY = (
    "CREATE INDEX ix_sessions_open_user_name_activity ON sessions "
    '(tenant_id, user_name COLLATE "C", last_activity_at, session_id COLLATE "C") '
    f"INCLUDE (expires_at, session_type) WHERE {LISTED}"
)
"""Each user name's sessions by last activity, since revision 0501: a search merges the first
ones of the few names its term is in (`admin_api.adapters.session_search._merged`)."""


def drop_statements() -> list[str]:
    """`DROP INDEX IF EXISTS` of every listing index, and of one an earlier revision had that
    a later one replaced (`ID_KEYS_INDEX_NAME`), in case its replacement is not built yet."""
    return [f"DROP INDEX IF EXISTS {name}" for name in (*NAMES, ID_KEYS_INDEX_NAME)]
