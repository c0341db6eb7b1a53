"""The scale-out tests' shared fixtures: the local Redis and a queue prefix of each test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A queue prefix of this test's own, whose Redis keys are removed afterwards."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"dramatiq:{name}*"))
    if keys:
        client.delete(*keys)
    client.close()
