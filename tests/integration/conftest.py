from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.stack import Stack, running_stack


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


@pytest.fixture
def event(stack: Stack) -> Iterator[httpx.Client]:
    assert stack.event_url
    with httpx.Client(base_url=stack.event_url, timeout=30) as client:
        yield client
