"""Protocol versioning: what this build speaks, and how peers agree on it."""

from __future__ import annotations

PROTOCOL_VERSION = 1
"""Version of the wire contract (envelope, events, commands) this build speaks."""

SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
"""Versions this build can decode; ``hello`` picks the highest both sides share."""


def negotiate(offered: list[int]) -> int | None:
    """The highest version both sides speak, or None when they share none."""
    common = set(offered) & set(SUPPORTED_VERSIONS)
    return max(common) if common else None
