"""Pure rules of the admin API: listing keys and cursors, session settings."""
