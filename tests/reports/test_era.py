"""The report says which era of the chain each scenario stands for."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import write_report

TODAY = "2026-05+ (1.75 s blocks, V2)"
OLD = "2026-04 (2 s blocks, V1+V2)"


def test_era_shows_in_the_scenario_table_and_details(make_run: Callable[..., Path]) -> None:
    run = make_run(overrides={"ws_drop": {"era": TODAY}, "polling_baseline": {"era": OLD}})
    _, out = write_report(load_run(run), load_criteria())
    html = out.read_text(encoding="utf-8")
    assert "<th>era</th>" in html
    cells = re.findall(r'<td class="era">([^<]*)</td>', html)
    assert TODAY in cells and OLD in cells
    assert cells.count("-") == len(cells) - 2  # a summary without an era shows "-"
    assert f"Chain era: {TODAY}" in html and f"Chain era: {OLD}" in html
    # the detail card of ws_drop names its era
    card = html[html.index('<h3>ws_drop '):]
    assert card.index(f"Chain era: {TODAY}") < card.index("</section>")
