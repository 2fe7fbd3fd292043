"""Shared fixtures. Fixtures that start real servers live in tests/fixtures/*.py and are
registered here as plugins so every test module can use them."""

from __future__ import annotations

import os

pytest_plugins = [
    "tests.fixtures.paths",
    "tests.fixtures.db",
    "tests.fixtures.servers",
    "tests.fixtures.webhook",
    "tests.fixtures.runtime",
]

# Tests never read a developer's ./chatwatch.toml or $CHATWATCH_CONFIG by accident.
os.environ.pop("CHATWATCH_CONFIG", None)
