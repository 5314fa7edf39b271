"""A database that refuses some rows the contract accepts, on both backends: a stand-in for
any value the database refuses (a NUL once was one), so a test can watch what a refusal does."""

from __future__ import annotations

from sqlalchemy import text

from read_model.store import Store


async def refuse_rows(store: Store, table: str, column: str, *values: str) -> None:
    """From now on the database refuses a row of `table` whose `column` is one of `values`
    (a trigger on SQLite, a check constraint on PostgreSQL: the errors each raises)."""
    names = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    async with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            statement = (
                f"CREATE TRIGGER refuse_{table}_{column} BEFORE INSERT ON {table} WHEN "
                f"NEW.{column} IN ({names}) BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            statement = (
                f"ALTER TABLE {table} ADD CONSTRAINT refuse_{table}_{column} "
                f"CHECK ({column} NOT IN ({names})) NOT VALID"
            )
        await conn.execute(text(statement))
