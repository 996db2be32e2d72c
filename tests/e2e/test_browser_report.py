"""In a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium): a run's test
perplexity and a registered model with alias ``champion`` are shown by the MLflow UI of a loopback tracking
server, and by the static page ``laborlm report`` writes; the page's links lead to the UI's run and model pages.

.ci/run installs Chromium; the test skips (saying so) only where /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laborlm.tracking import metric_names as mn
from laborlm.tracking.report import write_report_page
from laborlm.tracking.server import MlflowServer, start_mlflow_server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
EXPERIMENT, MODEL, RUN = "browser-report", "laborlm-browser-test", "benchmark-careers-browser"
PERPLEXITY = 9.1834  # shown as logged, to four decimals, by both pages

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing (Debian package chromium; "
        "`apt-get install chromium chromium-driver`, as .ci/run does)",
    ),
]
# Headless as root on a machine with no outside network: without the background-networking flags Chromium
# keeps trying (and failing) to reach Google's services.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)
WAIT_S = 90  # the UI's JavaScript bundle is large: its first render takes a while on a loaded 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv(
            "MLFLOW_DISABLE_TELEMETRY", "true"
        )  # no usage reports from the server (or the UI it serves)
        server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def logged(server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One finished run with ``test/perplexity``, registered as version 1 of MODEL with alias champion;
    returns the experiment's and the run's ids."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
    exp = client.create_experiment(EXPERIMENT)
    run_id = client.create_run(exp, run_name=RUN, tags={"laborlm.kind": "benchmark"}).info.run_id
    client.log_metric(run_id, mn.TEST_PERPLEXITY, PERPLEXITY)
    client.log_metric(run_id, mn.TEST_ORACLE_PERPLEXITY, 7.2801)
    model_dir = tmp_path_factory.mktemp("model")
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run_id, str(model_dir), "model")
    client.set_terminated(run_id)
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, source=f"runs:/{run_id}/model", run_id=run_id).version
    client.set_registered_model_alias(MODEL, "champion", version)
    return exp, run_id


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not os.path.exists(CHROMEDRIVER):
        pytest.fail(f"{CHROMIUM} is installed but {CHROMEDRIVER} is not (Debian package chromium-driver)")
    profile = tempfile.mkdtemp(prefix="laborlm-chromium-")  # a fresh profile every time
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait_for_text(driver: Any, *texts: str) -> str:
    """Wait until the rendered page's visible text holds every one of ``texts``; return that text."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d: Any) -> str | bool:
        body = str(d.find_element(By.TAG_NAME, "body").text)
        return body if all(t in body for t in texts) else False

    try:
        return str(WebDriverWait(driver, WAIT_S, poll_frequency=0.5).until(shown))
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(
            f"{driver.current_url}: {texts} not all shown in {WAIT_S} s; page text:\n{body[:3000]}"
        ) from None


def test_mlflow_ui_and_report_page_show_the_run_and_the_champion(
    server: MlflowServer, logged: tuple[str, str], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    experiment_id, run_id = logged
    page = write_report_page(EXPERIMENT, server.uri, tmp_path / "report")

    # The static page: the perplexity in the run's row, the alias in the registry section, links into the UI.
    browser.get(page.resolve().as_uri())
    _wait_for_text(browser, f"LaborLM report: {EXPERIMENT}", RUN, MODEL, "@champion")
    cell = browser.find_element(
        By.CSS_SELECTOR, f'tr[data-run-id="{run_id}"] td[data-metric="{mn.TEST_PERPLEXITY}"]'
    )
    assert cell.text == str(PERPLEXITY)
    alias = browser.find_element(By.CSS_SELECTOR, f'article[data-model="{MODEL}"] code.alias')
    assert alias.text == "@champion"
    assert (
        browser.find_element(By.ID, "mlflow-ui").get_attribute("href")
        == f"{server.uri}/#/experiments/{experiment_id}"
    )
    run_link = browser.find_element(By.LINK_TEXT, RUN).get_attribute("href")
    model_link = browser.find_element(By.LINK_TEXT, MODEL).get_attribute("href")
    assert run_link == f"{server.uri}/#/experiments/{experiment_id}/runs/{run_id}"
    assert model_link == f"{server.uri}/#/models/{MODEL}"

    # The MLflow UI's run page, followed from the report: the run, the metric's key and its value.
    browser.get(run_link)
    _wait_for_text(browser, RUN, mn.TEST_PERPLEXITY, str(PERPLEXITY))

    # The UI's registered-model page: version 1 of the model, its row carrying the champion alias.
    browser.get(model_link)
    _wait_for_text(browser, MODEL, "Version 1", "champion")
    rows = browser.find_elements(
        By.XPATH, "//*[self::tr or @role='row'][.//a[normalize-space()='Version 1']]"
    )
    assert any("champion" in row.text for row in rows), [row.text for row in rows]
