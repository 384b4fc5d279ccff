"""Shared pytest setup."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "network: downloads data from the internet (skipped when unreachable); deselect with -m 'not network'",
    )
