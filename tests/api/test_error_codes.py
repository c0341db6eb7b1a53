"""Every domain error has a stable code the API maps to its own status, never to a 500."""

from __future__ import annotations

import importlib
import pkgutil

import capture
import retrieval
from api.errors import ErrorCode
from capture.errors import CaptureError
from retrieval.errors import RetrievalError

BASES = {CaptureError, RetrievalError}


def _subclasses(base: type) -> set[type]:
    found = set(base.__subclasses__())
    for cls in list(found):
        found |= _subclasses(cls)
    return found


def test_every_domain_error_maps_to_its_own_code() -> None:
    for package in (capture, retrieval):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in module.name and not module.name.endswith("evaluation"):
                importlib.import_module(module.name)
    errors = (_subclasses(CaptureError) | _subclasses(RetrievalError)) - BASES
    assert len(errors) >= 15
    for error in errors:
        mapped = ErrorCode.from_code(error.code)
        assert mapped is not ErrorCode.INTERNAL, f"{error.__module__}.{error.__name__} ({error.code}) is not mapped"
        assert mapped.status < 500 or mapped.status == 503, error.code
