"""The event and command contract shared by the registry, the admin API and the gateway."""
