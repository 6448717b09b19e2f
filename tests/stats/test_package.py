"""Every name the package lists resolves to the object of its submodule."""

from __future__ import annotations

import importlib

import pytest

import radiograph.stats as stats


@pytest.mark.parametrize("name", stats.__all__)
def test_exported_name_is_the_submodule_object(name):
    module = importlib.import_module(f"radiograph.stats.{stats._MODULE_OF[name]}")
    assert getattr(stats, name) is getattr(module, name)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        stats.nope  # noqa: B018
