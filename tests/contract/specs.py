"""The vendors' published specifications (`<repo root>/../shared/specs/`), loaded once.

A test that needs one skips, with the reason, when the checkout has no `../shared` next to it
(a plain clone): the specs are not part of this repository.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
SWAGGER = SHARED / "specs" / "newstore" / "newstore-api.swagger.json"
OPENAPI = SHARED / "specs" / "commercetools" / "openapi.yaml"
GRAPHQL_SDL = SHARED / "specs" / "commercetools" / "schema.graphql"


def require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(
            f"{path} is absent: the vendors' published specs live in <repo root>/../shared "
            f"({SHARED}), which this checkout does not have"
        )
    return path


@cache
def swagger() -> dict[str, Any]:
    return dict(json.loads(require(SWAGGER).read_text(encoding="utf-8")))


@cache
def openapi() -> dict[str, Any]:
    # the C loader reads the 3 MB file in about 3 s
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with require(OPENAPI).open(encoding="utf-8") as stream:
        return dict(yaml.load(stream, Loader=loader))


@cache
def graphql_sdl() -> str:
    return require(GRAPHQL_SDL).read_text(encoding="utf-8")
