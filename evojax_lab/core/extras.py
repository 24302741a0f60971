"""Optional dependencies: features that need an extra import it through :func:`require`, which
names the extra to install when the package is missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


class MissingExtra(ImportError):
    """A feature needs an optional dependency that is not installed (one line naming the
    ``pip install`` extra)."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or, when its package is not installed, raise :class:`MissingExtra`:
    ``feature`` needs ``pip install 'evojax_lab[extra]'``. (An installed package whose own
    imports fail raises its own error.)"""
    package = module.split(".")[0]
    if importlib.util.find_spec(package) is None:
        raise MissingExtra(f"{feature} needs {package}, which is not installed: "
                           f"pip install 'evojax_lab[{extra}]'")
    return importlib.import_module(module)
