"""Optional dependencies: features that need an extra import it through :func:`require`, which
names the extra to install when the package is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """A feature needs an optional dependency that is not installed (one line naming the
    ``pip install`` extra)."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or, when its package is not installed, raise :class:`MissingExtra`:
    ``feature`` needs ``pip install 'evojax_lab[extra]'``. (An installed package whose own
    imports fail raises its own error.)"""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != package and not str(err.name).startswith(package + "."):
            raise
        raise MissingExtra(f"{package} is not installed (needed by {feature}): "
                           f"pip install 'evojax_lab[{extra}]'") from None
