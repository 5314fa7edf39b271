"""The read model both services share: tables, migrations, engine and transactions, queries.

`session_registry` writes it from the event log; `admin_api` reads it and writes its own
requests and settings. Both depend on this package and never on each other.
"""
