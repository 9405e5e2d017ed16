"""Fixtures for the example service's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from engine import HttpClient


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.aclose()
