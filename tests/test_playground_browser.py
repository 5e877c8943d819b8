"""A real browser on the Playground: Debian's headless Chromium driven by Selenium.

Skips (with the reason) only when Chromium or its driver is not installed. Install with
``apt-get install -y chromium chromium-driver`` and ``pip install selenium``. The
screenshot goes to ``$ROSENBLATT_SCREENSHOT_DIR`` (default: pytest's tmp_path).
"""

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the playground server needs aiohttp")

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                             "/usr/bin/chromium") if p and Path(p).exists()), None)
DRIVER = next((p for p in (os.environ.get("CHROMEDRIVER"), shutil.which("chromedriver"),
                           "/usr/bin/chromedriver") if p and Path(p).exists()), None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed "
           "(apt-get install -y chromium chromium-driver)")


def wait(cond, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("selenium is not installed (pip install selenium)")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_page_in_chromium(browser, tmp_path):
    from rosenblatt.playground.server import ServerThread
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    d = browser
    with ServerThread() as srv:
        d.get(srv.url)
        epoch = lambda: int(d.find_element(By.ID, "epoch-number").text.replace(",", ""))
        wait(lambda: d.execute_script("return state.sid"), what="the session")
        wait(lambda: d.find_elements(By.CSS_SELECTOR, "canvas[data-dataset=xor]"),
             what="the dataset picker")
        assert "dataset=circle" in d.current_url

        # switch the data set and the activation; the URL follows
        d.find_element(By.CSS_SELECTOR, "canvas[data-dataset=xor]").click()
        wait(lambda: "dataset=xor" in d.current_url, what="dataset=xor in the URL")
        Select(d.find_element(By.ID, "activations")).select_by_value("relu")
        wait(lambda: "activation=relu" in d.current_url, what="activation=relu in the URL")
        # a wider net makes the xor loss fall reliably within a few epochs
        d.find_element(By.CSS_SELECTOR, ".add-neuron[data-layer='0']").click()
        wait(lambda: "layers=5%2C2" in d.current_url, what="5 neurons in layer 1")
        sid = d.execute_script("return state.sid")
        assert d.execute_script("return state.config.activation") == "relu"

        # play: the epoch counter advances and the test loss falls
        loss0 = float(d.find_element(By.ID, "loss-test").text)
        assert epoch() == 0
        d.find_element(By.ID, "play-pause-button").click()
        wait(lambda: epoch() >= 30, 60, what="30 epochs")
        d.find_element(By.ID, "play-pause-button").click()
        wait(lambda: "playing" not in d.find_element(By.ID, "play-pause-button")
             .get_attribute("class"), what="pause")
        loss1 = float(d.find_element(By.ID, "loss-test").text)
        assert loss1 < loss0, (loss0, loss1)
        # one loss per epoch (and epoch 0) in the plotted history
        wait(lambda: d.execute_script("return state.hist.test.length") == epoch() + 1,
             what="the full loss history")

        # hover over a link shows its weight; a click edits it
        link = d.find_element(By.CSS_SELECTOR, "path.hit[data-layer='0'][data-source='1']"
                                               "[data-target='0']")
        ActionChains(d).move_to_element(link).perform()
        wait(lambda: d.find_element(By.ID, "hovercard").is_displayed(), what="hovercard")
        assert "Weight is" in d.find_element(By.ID, "hovercard-text").text
        ActionChains(d).move_to_element(link).click().perform()
        box = wait(lambda: d.find_element(By.ID, "weight-input") if d.find_element(
            By.ID, "weight-editor").is_displayed() else None, what="the weight editor")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys("1.5", Keys.ENTER)
        wait(lambda: not d.find_element(By.ID, "weight-editor").is_displayed(),
             what="the editor to close")
        with urllib.request.urlopen(srv.url + f"api/session/{sid}/frame") as r:
            frame = json.loads(r.read())["frame"]
        assert frame["weights"][0]["W"][1][0] == 1.5
        assert d.execute_script("return state.weights[0].W[1][0]") == 1.5

        # the URL reproduces the setup in a new tab (its own session)
        url = d.current_url
        d.get("about:blank")
        d.get(url)
        wait(lambda: d.execute_script("return state.sid") not in (None, sid),
             what="a new session")
        assert d.execute_script("return state.config.dataset") == "xor"
        assert d.execute_script("return state.config.layers") == [5, 2]
        d.find_element(By.ID, "play-pause-button").click()
        wait(lambda: epoch() >= 3, 60, what="3 epochs")
        d.find_element(By.ID, "play-pause-button").click()

        severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        out = Path(os.environ.get("ROSENBLATT_SCREENSHOT_DIR", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        shot = out / "playground.png"
        d.save_screenshot(str(shot))
        assert shot.stat().st_size > 10000
