"""The page in a real browser (headless Chromium driven by selenium + chromedriver):
changing the selected unit recolours the text; hostile text shows literally, runs nothing.
Screenshots go to test-artifacts/ (git-ignored). `make test` installs chromium as root;
elsewhere, without chromium, these tests skip and say why."""
import shutil
import tempfile
from pathlib import Path

import pytest

from ..report_helpers import CODE, write_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1200,900")
HOSTILE = ('s = "<script>window.__pwned = 1; document.title = \'pwned\'</script>"\n'
           '</div><img src=x onerror="window.__pwned = 2">&amp; & &lt; <b>bold</b>\n')


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for exe in ("chromium", "chromedriver"):
        if shutil.which(exe) is None:
            return (f"{exe} not found: `make test` installs Debian's chromium and chromium-driver "
                    f"when run as root (apt-get install -y chromium chromium-driver)")
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp(prefix="lstmkit-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(driver, html: Path):
    driver.get(html.as_uri())
    assert driver.execute_script("return document.body.dataset.ready") == "1", "the page script did not finish"


def _colours(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#text > span'), s => s.style.backgroundColor)")


def test_changing_the_unit_recolours_the_text(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    _open(browser, write_page(tmp_path).html)
    assert browser.execute_script("return document.getElementById('text').textContent") == CODE
    before, sel0 = _colours(browser), browser.execute_script("return document.body.dataset.selected")
    assert len(before) == len(CODE) and len(set(before)) > 5
    unit = browser.find_element(By.ID, "unit")
    new = "7" if not sel0.endswith(",7") else "6"
    unit.clear()
    unit.send_keys(new)
    after = _colours(browser)
    assert browser.execute_script("return document.body.dataset.selected").endswith("," + new)
    assert after != before
    Select(browser.find_element(By.ID, "quantity")).select_by_value("f")
    Select(browser.find_element(By.ID, "layer")).select_by_value("0")
    Select(browser.find_element(By.ID, "direction")).select_by_value("1")
    assert browser.execute_script("return document.body.dataset.selected") == f"0,1,f,{new}"
    stretched = _colours(browser)
    assert stretched != after
    browser.find_element(By.ID, "stretch").click()             # off: the absolute scale
    assert _colours(browser) != stretched
    row = browser.find_elements(By.CSS_SELECTOR, "#units tbody tr")[0]
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    row.click()
    layer, direction = cells[1], {"forward": "0", "backward": "1"}[cells[2]]
    assert browser.execute_script("return document.body.dataset.selected") == \
        f"{layer},{direction},{cells[3]},{cells[4]}"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(ARTIFACTS / "inspect_page.png"))


def test_hostile_text_is_shown_literally_and_runs_nothing(browser, tmp_path):
    from selenium.webdriver.common.by import By
    _open(browser, write_page(tmp_path, HOSTILE, title="</title><script>window.__pwned=3</script>").html)
    assert browser.execute_script("return document.getElementById('text').textContent") == HOSTILE
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert browser.title == "</title><script>window.__pwned=3</script>"
    assert browser.find_elements(By.CSS_SELECTOR, "#text *:not(span), #units td img, #units td b") == []
    snippets = browser.execute_script(
        "return Array.from(document.querySelectorAll('#units .snippet'), s => s.textContent)")
    assert snippets and all(s.replace("\u21b5", "\n") in HOSTILE for s in snippets)
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "inspect_hostile.png"))
