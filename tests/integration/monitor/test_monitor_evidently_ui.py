"""The drift history in Evidently's own UI, seen in a real browser: a real monitor judges a small
replay into a temporary workspace, `persona ui` serves it on a free port, and headless Chromium
(Debian's ``chromium`` + ``chromium-driver``; `make test` installs them as root) opens the
dashboard: every panel is there, with one point per replayed window, and a drift window is one
click from its snapshot and two from its full Evidently report (docs/monitor.md)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monitor_helpers import MONTHS, ORIGIN, Running, month, publish, register_champion

from infra.demo.services import ChildService, persona_argv
from infra.stack.process import wait_until
from monitor.settings import TEST_NAMES, MonitorSettings
from monitor.workspace import project_name
from personas import db, registry
from personas.model import CentroidModel
from personas.settings import Settings, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

WINDOWS = 10  # 7-day windows of February and March (Jan 27 … Mar 31), closed by the sentinel
SCREENSHOT_ENV = "PERSONA_TEST_SCREENSHOT"  # set it to a path to keep the dashboard's screenshot


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through chromedriver; missing → the test fails with the fix."""
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "headless Chromium is needed for the Evidently UI test: apt-get install -y chromium "
            "chromium-driver (`make test` installs them when run as root)",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,2400")
    options.binary_location = chromium
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def _windows(settings: Settings) -> list[tuple[str, str]]:
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT window_id, status FROM drift_reports WHERE published_at IS NOT NULL "
            "ORDER BY window_start"
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _replay(settings: Settings, model: CentroidModel, workspace: Path, tmp: Path) -> None:
    """February (ok) and March (drift) judged by a real monitor into ``workspace``."""
    january = month(np.random.default_rng(202501), model.centroids, 500, 2.0)
    version = register_champion(settings, model, january)
    publish(settings, registry.load_version(settings, version), MONTHS[:2])
    ms = MonitorSettings(
        _env_file=None,  # type: ignore[call-arg]
        window="7d",
        window_origin=ORIGIN,
        allowed_lateness="1h",
        min_events=40,
        reports="non_ok",  # the failed windows get a full Evidently report too
        reports_dir=tmp / "reports",
        evidently_residuals=False,
        evidently_workspace=workspace,
        group_id=f"monitor-ui-{settings.model_name}",
        instance_id="monitor-ui",
        metrics_port=0,
    )
    monitor = Running(settings, ms)
    try:
        assert wait_until(lambda: len(_windows(settings)) >= WINDOWS, timeout=300, interval=1.0), (
            f"the monitor published {len(_windows(settings))} of {WINDOWS} windows; "
            f"stats {monitor.stats}"
        )
    finally:
        monitor.finish()  # the judge thread records each window before it is done


def _card(chrome: Any, title: str) -> Any:
    from selenium.webdriver.common.by import By

    heading = chrome.find_element(By.XPATH, f"//h5[normalize-space(text())='{title}']")
    return heading.find_element(By.XPATH, "./ancestor::div[contains(@class,'MuiCard-root')][1]")


def _count(chrome: Any, title: str, selector: str) -> int:
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By

    try:
        return len(_card(chrome, title).find_elements(By.CSS_SELECTOR, selector))
    except NoSuchElementException:
        return -1


def test_the_dashboard_shows_every_replayed_window_in_a_real_browser(
    isolated_settings: Settings, vendor_model: CentroidModel, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings, workspace = isolated_settings, tmp_path / "workspace"
    _replay(settings, vendor_model, workspace, tmp_path)
    windows = _windows(settings)
    judged = [w for w in windows if w[1] != "insufficient_data"]
    drifted = [i for i, w in enumerate(windows) if w[1] == "drift"]
    assert len(windows) == WINDOWS and drifted and len(judged) >= 6, windows

    port = _free_port()
    env = settings_env(settings) | {"DO_NOT_TRACK": "1"}
    ui = ChildService(
        "ui",
        persona_argv("ui", "--workspace", str(workspace), "--port", str(port)),
        tmp_path / "ui.log",
        env,
    ).start()
    try:
        url = f"http://127.0.0.1:{port}"
        ui.wait_for_http(f"{url}/api/projects", timeout=180)
        with urllib.request.urlopen(f"{url}/api/projects", timeout=10) as resp:
            projects = json.load(resp)
        (project,) = [p for p in projects if p["name"] == project_name(settings.model_name)]

        browser.get(f"{url}/projects/{project['id']}")
        wait = WebDriverWait(browser, 120, poll_frequency=0.5)
        bar, mark = ".MuiBarElement-root", ".MuiMarkElement-root"
        wait.until(lambda _: _count(browser, "Window status", bar) == len(windows))
        titles = {e.text.strip() for e in browser.find_elements(By.TAG_NAME, "h5")}
        tests = [f"{t}: p-value against its threshold" for t in TEST_NAMES]
        assert {"Window status", "Persona mix", "Labelled share", "Model version"} <= titles
        assert set(tests) <= titles, titles
        assert "persona_shift per persona: adjusted p-value against the threshold" in titles
        # one stacked bar per persona per judged window; two lines (p, threshold) per test
        wait.until(lambda _: _count(browser, "Persona mix", bar) == 3 * len(judged))
        for title in tests:
            wait.until(lambda _, t=title: _count(browser, t, mark) == 2 * len(judged))
        assert _count(browser, "Model version", mark) == len(windows)  # insufficient too
        assert _count(browser, "Events per window", bar) == len(windows)
        if os.environ.get(SCREENSHOT_ENV):
            browser.save_screenshot(os.environ[SCREENSHOT_ENV])

        # one click: the first drift window's bar → its snapshot; a second: its full report
        bars = _card(browser, "Window status").find_elements(By.CSS_SELECTOR, bar)
        by_time = sorted(bars, key=lambda e: float(e.get_attribute("x") or 0))
        ActionChains(browser).move_to_element(by_time[drifted[0]]).click().perform()
        view = wait.until(
            lambda _: next(
                (
                    e
                    for e in browser.find_elements(By.XPATH, "//a|//button")
                    if e.text == "View report"
                ),
                None,
            )
        )
        view.click()
        window_id = windows[drifted[0]][0]
        wait.until(lambda _: window_id in browser.find_element(By.TAG_NAME, "body").text)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "drift" in body and "distance_shift" in body
        browser.find_element(By.LINK_TEXT, "The full Evidently report of this window").click()
        wait.until(lambda _: "Drifted" in browser.find_element(By.TAG_NAME, "body").text)
    finally:
        ui.stop()
