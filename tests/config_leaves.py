"""Flatten a nested config mapping into ``dotted.key -> value`` pairs (test helper)."""


def leaves(d, prefix=""):
    """Yield ``(dotted key, value)`` for every non-mapping value of ``d``."""
    if isinstance(d, dict):
        for k, v in d.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, d
