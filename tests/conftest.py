"""Shared pytest setup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

# the model tests' shared checks (tests/models/toy.py): detailed assertion messages there too
pytest.register_assert_rewrite("toy")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "network: downloads data from the internet (skipped when unreachable); deselect with -m 'not network'",
    )


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test (tiny models: faster, and the shared cores stay free);
    the thread count is restored afterwards. Opt in with ``usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
