"""A small platform service behind the auth gateway, for demos and end-to-end tests."""
