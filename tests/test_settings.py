"""Every setting is documented, in the code and in README."""

from __future__ import annotations

from pathlib import Path

import pytest

from credence.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_has_a_description_and_a_readme_entry() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"
        assert f"CREDENCE_{name.upper()}" in README, f"setting {name} is not in README"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENCE_MAX_BATCH_RECORDS", "7")
    assert Settings().max_batch_records == 7
