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
TRIGRAM_COLUMNS = ("user_name", "session_id", "device")
# pg_trgm splits text into words at every character that is not a letter or a digit, so in a
# session id (base64url) `-` and `_` end words, and a term such as `u-h` or `Q-_-q` has no
# trigram of its own. The session id index holds the id with them written as two letters no
# handle holds (`read_model.session_query.session_id_ilike`, since revision 0601).
HANDLE_SEPARATORS, SEPARATOR_LETTERS = "-_", "жш"
SESSION_ID_TEXT = f"translate(session_id, '{HANDLE_SEPARATORS}', '{SEPARATOR_LETTERS}')"
TRIGRAM_EXPRESSIONS = {"user_name": "user_name", "session_id": SESSION_ID_TEXT, "device": "device"}
# The planner keeps no statistics of an expression that only a partial index holds, and
# without them guesses that a 3-character pattern matches 4% of the rows: at ten million
# sessions it read the table instead of the index (seconds). These give it the expression's
# histogram, as the column has one (`ANALYZE` fills them).
SESSION_ID_TEXT_STATISTICS = (
    f"CREATE STATISTICS IF NOT EXISTS st_sessions_session_id_text ON ({SESSION_ID_TEXT}) "
    "FROM sessions"
)
# Exactly the literal conditions of `read_model.active.listed_condition` and its neighbours, so
# the planner can prove every list query implies it; other session types never enter the indexes.
LISTED = "state = 'open' AND created_at IS NOT NULL AND session_type IN ('browser', 'mobile')"
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
        f"USING gin (tenant_id, {TRIGRAM_EXPRESSIONS[column]} gin_trgm_ops) WHERE {LISTED}"
    )


def create_statements() -> list[str]:
    """`CREATE INDEX` of every listing index (the extensions must exist)."""
    trigram_indexes = [trigram_statement(column) for column in TRIGRAM_COLUMNS]
    return [*sort_statements(), *trigram_indexes, BY_USER, BY_NAME_ACTIVITY]


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
    """`DROP INDEX IF EXISTS` of every listing index."""
    return [f"DROP INDEX IF EXISTS {name}" for name in NAMES]
