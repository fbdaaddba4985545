"""docs/websocket_migration.md stays true: its settings table is the config model."""

from __future__ import annotations

import enum
import json
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from monitor.config import Settings

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "websocket_migration.md"
ROW = re.compile(r"^\|\s*`([a-z_0-9]+)`\s*\|\s*`([^`]*)`\s*\|")


def guide_settings() -> dict[str, Any]:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    out: dict[str, Any] = {}
    for line in section.splitlines():
        m = ROW.match(line)
        if m:
            name, literal = m.groups()
            assert name not in out, f"{name} appears twice in the guide"
            out[name] = None if literal == "none" else json.loads(literal)
    return out


def normalise(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def test_every_setting_is_documented_with_its_default() -> None:
    documented = guide_settings()
    fields = Settings.model_fields
    assert sorted(documented) == sorted(fields), (
        f"missing from the guide: {sorted(set(fields) - set(documented))}; "
        f"not in the config: {sorted(set(documented) - set(fields))}"
    )
    for name, field in fields.items():
        default = normalise(field.get_default(call_default_factory=True))
        assert documented[name] == default, (
            f"{name}: guide {documented[name]!r}, config {default!r}")


def test_contract_setting_names_are_in_the_guide() -> None:
    contracts = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    section = contracts.split("## Monitor settings", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`([a-z][a-z0-9_]+)`", section.split("Names:", 1)[1]))
    assert names, "no names found in docs/contracts.md"
    assert names <= set(guide_settings()), sorted(names - set(guide_settings()))


def test_guide_links_to_the_latest_report_and_has_the_sections() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert "](../results/latest/report.html)" in text
    for heading in ("## Architecture", "## Rollout", "## Configuration", "## Testing strategy",
                    "## Rollback plan", "## Cost analysis"):
        assert heading in text, heading
    assert "```mermaid" in text
