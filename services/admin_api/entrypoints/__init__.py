"""HTTP routes, their schemas and dependencies."""
