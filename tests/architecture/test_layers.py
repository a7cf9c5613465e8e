"""The house: every package sits in a declared layer, is named in docs/architecture.md,
and no catch-all module hides between them.

The contracts themselves (layers, the ledger below every feature, the policy layer
without the features' tables, no cycles) are checked by ``lint-imports`` in
``make test``; here, that they cover every package, and that the document does too.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "credence"
CATCH_ALL = {"util", "utils", "common", "helpers", "misc", "shared", "tools"}


def packages() -> set[str]:
    """The packages and top-level modules of ``credence``."""
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    found |= {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__")}
    return found


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return found


def layered() -> list[str]:
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    assert layers["containers"] == ["credence"]
    assert layers["exhaustive"] is True
    names = [n for layer in layers["layers"] for n in re.split(r"[|:]", str(layer))]
    return [n.strip() for n in names]


def test_every_package_is_in_exactly_one_layer() -> None:
    names = layered()
    assert sorted(names) == sorted(set(names)), "a package is in two layers"
    assert set(names) == packages()


def test_no_contract_ignores_an_import() -> None:
    for contract in contracts():
        assert "ignore_imports" not in contract, contract["name"]


def test_the_ledger_may_import_no_feature_above_it() -> None:
    (ledger,) = [c for c in contracts() if c.get("source_modules") == ["credence.ledger"]]
    names = layered()
    above = names[: names.index("ledger")]
    assert ledger["type"] == "forbidden"
    assert {f"credence.{n}" for n in above} == set(ledger["forbidden_modules"])


def test_docs_architecture_names_every_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = sorted(p for p in packages() if f"`credence.{p}`" not in text)
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_no_catch_all_module() -> None:
    names = {p.stem for p in PACKAGE.rglob("*.py")} | {
        p.name for p in PACKAGE.rglob("*") if p.is_dir()
    }
    assert not names & CATCH_ALL
