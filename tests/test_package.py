"""The package namespace: ``import twinsock`` gives every error class and the main names."""

from __future__ import annotations

import twinsock
from twinsock import errors


def test_every_error_class_is_exported_by_the_package() -> None:
    missing = [name for name in errors.__all__ if name not in twinsock.__all__]
    assert not missing
    for name in errors.__all__:
        assert getattr(twinsock, name) is getattr(errors, name)


def test_the_package_all_names_exist() -> None:
    for name in twinsock.__all__:
        assert hasattr(twinsock, name), name
