"""Every name the package lists resolves to the object of its submodule."""

from __future__ import annotations

import importlib

import pytest

import radiograph.stats as stats

MODULE_OF = {name: module for module, names in stats.EXPORTS.items() for name in names}


@pytest.mark.parametrize("name", stats.__all__)
def test_exported_name_is_the_submodule_object(name):
    module = importlib.import_module(f"radiograph.stats.{MODULE_OF[name]}")
    assert getattr(stats, name) is getattr(module, name)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="nope"):
        stats.nope  # noqa: B018
