"""Lazy package exports (PEP 562), so that importing a package costs nothing until one of its
names is used.

``radiograph --help`` imports every command's module, and a module imports its package's
``__init__`` first; with eager imports there, listing the commands imported torch, timm and
torchvision (6.5 s, 1.3 GB). A package declares its public names per submodule instead::

    __all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), {
        "config": ("TrainConfig", "load_config"),
        "trainer": ("run_cross_validation",),
    })

``from radiograph.train import TrainConfig`` then imports ``radiograph.train.config`` on first
use, and the value is kept in the package's namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    Args:
        package: the package's ``__name__``.
        namespace: the package's ``globals()``; a loaded name is stored there.
        exports: submodule (relative to ``package``) -> names it defines.

    Returns:
        (``__all__``, ``__getattr__``, ``__dir__``) to assign in the package's ``__init__``.

    Raises:
        ValueError: a name is exported by two submodules.
    """
    module_of: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in module_of:
                raise ValueError(
                    f"{package}: {name!r} is exported by both {module_of[name]!r} and {module!r}"
                )
            module_of[name] = module
    public = sorted(module_of)

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return public

    return public, __getattr__, __dir__
