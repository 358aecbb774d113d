"""Fixtures of the environments tests: strict schema validation with the schemas loaded once."""

from __future__ import annotations

import functools

import kubernetes_validate
import kubernetes_validate.utils
import pytest

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


@pytest.fixture(scope="session")
def validate_manifest():
    """``validate_manifest(obj)``: kubernetes-validate strict for every supported version.

    The library re-reads its JSON schema files on every call; caching them for the session keeps
    the hundreds of validations in these tests fast.
    """
    cached = functools.cache(kubernetes_validate.utils.schema_contents)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)

        def validate(obj: dict) -> None:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)

        yield validate
