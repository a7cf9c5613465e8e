"""README's section on the import file matches the importer: its table names every
field a line may carry, and its example files import as they stand."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.cli.imports import run_import
from credence.clock import FixedClock
from credence.context import Context
from credence.ledger.importer import FIELDS
from credence.settings import Settings
from tests.world import build_world

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### The import file")
    return text[start : text.index("\n## ", start)]


def block(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", section(), re.S)
    assert found is not None, f"no {language} example in README's import section"
    return found.group(1)


def test_the_table_names_every_field() -> None:
    documented = re.findall(r"^\| `(\w+)` \|", section(), re.M)
    assert documented == list(FIELDS)


def test_the_examples_import(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    world = build_world(sessions, clock, people=2)
    ctx = Context(settings=Settings(), engine=engine, sessions=sessions, clock=clock)
    csv_text, jsonl_text = block("csv"), block("json")
    ids = sorted(set(re.findall(r"sub_[0-9a-f]+", csv_text)))
    assert len(ids) == 2
    for example, subject in zip(ids, world.people, strict=True):
        csv_text = csv_text.replace(example, subject.public_id)
        jsonl_text = jsonl_text.replace(example, subject.public_id)
    out = io.StringIO()
    console = Console(file=out, width=120)
    (tmp_path / "records.csv").write_text(csv_text, encoding="utf-8")
    assert run_import(ctx, tmp_path / "records.csv", "tax_office", console=console) == 0, (
        out.getvalue()
    )
    assert "3 new" in out.getvalue()
    (tmp_path / "records.jsonl").write_text(jsonl_text, encoding="utf-8")
    assert run_import(ctx, tmp_path / "records.jsonl", "tax_office", console=console) == 0
    assert "1 duplicates" in out.getvalue()  # the same record as the CSV's first line
