"""The web management UI in a real browser: headless Chromium driven by
Selenium logs in, opens every page, declares a queue, publishes and gets a
message through the forms, and fails on any JavaScript console error.
Screenshots of each page go to tests/python/ui-screenshots/ (not committed).

Needs Debian's chromium and chromium-driver (.ci/run installs them). When
they are missing the tests are skipped, unless WARREN_UI_TESTS=required
(as CI sets it), which makes a missing browser a failure.
"""

import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import pytest

from helpers import OwnBroker
from conftest import EXTERNAL_URL, HERE, WARREN_BIN

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("WARREN_UI_TESTS") == "required"
SHOTS = os.path.join(HERE, "ui-screenshots")

if EXTERNAL_URL is not None:
    pytest.skip("the UI tests start their own broker", allow_module_level=True)
if not (CHROMIUM and CHROMEDRIVER):
    if REQUIRED:
        raise RuntimeError("WARREN_UI_TESTS=required but chromium/chromedriver are missing")
    pytest.skip("chromium and chromedriver are not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


class UiBroker(OwnBroker):
    """A broker of our own, for its management port."""

    def __init__(self, shards):
        self.dir = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [WARREN_BIN, "--bind", "127.0.0.1", "--port", "0", "--mgmt-port", "0",
             "--shards", str(shards), "--data-dir", os.path.join(self.dir.name, "data")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ, WARREN_LOG="warn"))
        self.port = int(self.proc.stdout.readline().decode().strip().rsplit(":", 1)[1])
        self.mgmt_port = int(self.proc.stdout.readline().decode().strip().rsplit(":", 1)[1])

@pytest.fixture(scope="module", params=[1, 2], ids=["shards1", "shards2"])
def broker(request):
    b = UiBroker(request.param)
    yield b
    b.close()


@pytest.fixture(scope="module")
def driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # As the machine's probe starts it: no sandbox as root, and no
    # background networking (the network is closed here).
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def console_errors(d):
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def shot(d, name):
    os.makedirs(SHOTS, exist_ok=True)
    d.save_screenshot(os.path.join(SHOTS, name + ".png"))


def wait(d, cond, secs=15):
    return WebDriverWait(d, secs).until(cond)


def visible_text(d, text, secs=15):
    wait(d, lambda d: text in d.find_element(By.ID, "main").text, secs)


def settled(d, secs=15):
    """Waits until the page's redraw (after an action or a hash change) has been swapped in."""
    wait(d, lambda d: d.find_element(By.ID, "main").get_attribute("data-busy") is None, secs)


def login(d, base, user="guest", password="guest"):
    d.get(base + "/")
    wait(d, EC.presence_of_element_located((By.ID, "login")))
    f = d.find_element(By.ID, "login")
    f.find_element(By.NAME, "username").send_keys(user)
    f.find_element(By.NAME, "password").send_keys(password)
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    visible_text(d, "Overview")


def test_every_page_loads_and_a_queue_round_trip_works_in_the_browser(driver, broker):
    base = "http://127.0.0.1:%d" % broker.mgmt_port
    d = driver
    d.get_log("browser")  # start from a clean console
    login(d, base)
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".uplot"))
    shot(d, "overview")
    for page, marker in [("connections", "Connections"), ("channels", "Channels"), ("exchanges", "amq.direct"),
                         ("queues", "Add a new queue"), ("users", "guest"), ("vhosts", "Virtual hosts"),
                         ("policies", "Add or update a policy"), ("definitions", "Download broker definitions")]:
        d.get(base + "/#/" + page)
        visible_text(d, marker)
        shot(d, page)
    # Declare a queue through the form.
    qname = "ui-queue-%d" % time.time_ns()
    d.get(base + "/#/queues")
    visible_text(d, "Add a new queue")
    form = d.find_element(By.ID, "add-queue")
    form.find_element(By.NAME, "name").send_keys(qname)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: qname in d.find_element(By.ID, "main").text)
    # Open it, publish a message, get it back.
    d.find_element(By.LINK_TEXT, qname).click()
    visible_text(d, "Publish message")
    pub = d.find_element(By.ID, "publish")
    pub.find_element(By.NAME, "payload").send_keys("hello from the browser")
    pub.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: "Message published" in d.find_element(By.ID, "flash").text)
    settled(d)
    get = d.find_element(By.ID, "get")
    Select(get.find_element(By.NAME, "ackmode")).select_by_value("ack_requeue_false")
    get.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: "hello from the browser" in d.find_element(By.ID, "got").text)
    shot(d, "queue")
    # The broker saw all of it: the queue exists and the message was taken.
    q = broker.api("GET", "/api/queues/%2F/" + urllib.parse.quote(qname, safe=""))
    assert q["messages"] == 0
    # Delete it through the UI.
    d.execute_script("window.confirm = () => true")
    d.find_element(By.ID, "delete-queue").click()
    wait(d, lambda d: d.current_url.endswith("#/queues"))
    errors = console_errors(d)
    assert errors == [], errors


def test_a_management_user_sees_no_admin_pages_and_bad_logins_fail(driver, broker):
    base = "http://127.0.0.1:%d" % broker.mgmt_port
    d = driver
    d.get(base + "/")
    d.execute_script("sessionStorage.clear()")
    d.get(base + "/")
    wait(d, EC.presence_of_element_located((By.ID, "login")))
    f = d.find_element(By.ID, "login")
    f.find_element(By.NAME, "username").send_keys("guest")
    f.find_element(By.NAME, "password").send_keys("wrong")
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: "Login failed" in d.find_element(By.ID, "login").text)
    user = "ui-viewer-%d" % time.time_ns()
    broker.api("PUT", "/api/users/" + user, {"password": "pw", "tags": "management"})
    broker.api("PUT", "/api/permissions/%2F/" + user, {"configure": ".*", "write": ".*", "read": ".*"})
    d.get(base + "/")
    d.execute_script("sessionStorage.clear()")
    login(d, base, user, "pw")
    nav = {a.get_attribute("data-page"): a.is_displayed() for a in d.find_elements(By.CSS_SELECTOR, "#nav a")}
    assert nav["queues"] and nav["exchanges"] and nav["overview"], nav
    assert not nav["users"] and not nav["vhosts"] and not nav["definitions"] and not nav["policies"], nav
    d.get(base + "/#/users")
    visible_text(d, "do not allow")
    shot(d, "management-user")
    d.find_element(By.ID, "logout").click()
    wait(d, EC.presence_of_element_located((By.ID, "login")))
    # The refused login above is a 401 the browser logs as a failed
    # resource load; nothing else may be on the console.
    errors = [e for e in console_errors(d) if "401" not in e["message"]]
    assert errors == [], errors
