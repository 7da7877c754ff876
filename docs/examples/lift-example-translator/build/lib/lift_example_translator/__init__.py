"""A worked example of a third-party lift plugin (see docs/plugins.md)."""
