"""The engines that score a Parquet population, and the extra that installs each.

The local columnar engine is part of the runtime (``pip install credence``). Every other
engine is an optional extra of the package (``pip install 'credence[spark]'``), so a
runtime install leaves it out; :func:`require_engine` refuses such an engine, naming the
command that installs it, before anything imports it.

This module imports only the standard library (and :mod:`credence.errors`): the CLI
calls it before it loads an engine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from credence.errors import CredenceError


@dataclass(frozen=True)
class EngineSpec:
    """An engine: the modules it imports that the runtime does not install, and the
    extra of the package that installs them (``None``: part of the runtime)."""

    name: str
    modules: tuple[str, ...] = ()
    extra: str | None = None

    @property
    def install(self) -> str:
        """The command that installs the engine."""
        target = f"credence[{self.extra}]" if self.extra else "credence"
        return f"pip install '{target}'"


#: Every engine ``credence score --input`` runs, by name. The extra's packages are in
#: pyproject.toml's ``[project.optional-dependencies]``: pyspark, and pandas, which
#: pyspark's Arrow path (``mapInArrow``) requires though the scorer does not use it.
ENGINES: dict[str, EngineSpec] = {
    "local": EngineSpec("local"),
    "spark": EngineSpec("spark", modules=("pyspark", "pandas"), extra="spark"),
}


class UnknownEngine(CredenceError):
    status = 422
    code = "unknown_engine"


class EngineNotInstalled(CredenceError):
    """An engine whose extra is not installed here; the message names the command that
    installs it."""

    status = 503
    code = "engine_not_installed"


def missing_modules(name: str) -> list[str]:
    """The modules engine ``name`` needs that cannot be imported here (found, not
    imported: importing pyspark alone takes a second)."""
    spec = _spec(name)
    return [module for module in spec.modules if importlib.util.find_spec(module) is None]


def require_engine(name: str) -> EngineSpec:
    """Engine ``name``, or :class:`EngineNotInstalled` if a module it needs is missing
    (:class:`UnknownEngine` for a name that is no engine)."""
    spec = _spec(name)
    missing = missing_modules(name)
    if missing:
        raise EngineNotInstalled(
            f"the {name} engine is not installed (no module {', '.join(missing)}): {spec.install}",
            details={"engine": name, "missing": missing, "install": spec.install},
        )
    return spec


def _spec(name: str) -> EngineSpec:
    try:
        return ENGINES[name]
    except KeyError:
        known = " or ".join(ENGINES)
        raise UnknownEngine(f"no engine {name!r}: choose {known}") from None
