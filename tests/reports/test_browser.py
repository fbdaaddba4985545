"""The report in a real browser: headless Chromium loads report.html from disk.

Needs /usr/bin/chromium (``.ci/run`` installs the Debian package). Without it the test
fails when ``CI`` is set, and can be deselected locally (``-k "not browser"``).
Screenshots go to the test's tmp dir, or to ``$REPORT_SCREENSHOT_DIR`` when set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from report_browser import CHROMIUM, inspect_page

from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import write_report

SIZES = {"desktop": (1280, 3000, False), "phone": (390, 844, True)}


def _need_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the report's browser check needs Chromium "
            "(apt-get install chromium)"
            + ("" if os.environ.get("CI") else "; deselect locally with -k 'not browser'"),
            pytrace=False,
        )


def _check(report_html: Path, shots: Path, prefix: str) -> None:
    page = inspect_page(report_html, SIZES)
    for name, png in page.screenshots.items():
        (shots / f"{prefix}-{name}.png").write_bytes(png)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert page.console_errors == []
    assert page.images > 0 and page.images_failed == 0
    assert page.attributes["data-loaded"] == "1"
    assert page.attributes["data-images-failed"] == "0"
    assert page.attributes["data-js-errors"] == "0"
    # on a phone the page itself never scrolls sideways: wide tables scroll in their box
    assert int(page.attributes["phone_scroll_width"]) <= 390


@pytest.mark.slow
def test_report_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    _need_chromium()
    shots = Path(os.environ.get("REPORT_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    _, html = write_report(load_run(run_dir), load_criteria())
    _check(html, shots, "report")


@pytest.mark.slow
def test_inconclusive_report_in_headless_chromium(make_run: object, tmp_path: Path) -> None:
    _need_chromium()
    shots = Path(os.environ.get("REPORT_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    run = make_run(overrides={"ws_drop": {"status": "harness_error",  # type: ignore[operator]
                                          "error": "simulator exited <1>"}},
                   remove=["ws_healthy/outcomes.parquet"])
    _, html = write_report(load_run(run), load_criteria())
    _check(html, shots, "inconclusive")


def test_missing_chromium_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"/nonexistent/chromium not found"):
        _need_chromium()
