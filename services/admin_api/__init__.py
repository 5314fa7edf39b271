"""The admin API: the Active User Sessions list, terminations, session settings and audit."""
