"""A customer places an order through the gateway's Swagger UI, in Debian's chromium.

Run by the system test `swagger_ui` (system-tests/tests/swagger_ui.rs) with the
tools venv's Python (selenium is pinned in xtask/src/tools.rs). The browser is the
only client: it opens `{gateway}/docs`, picks the customer service's document in the
drop-down, logs in with "Try it out" on `POST /api/v1/customers/login`, reads the
token from the answer, pastes it into "Authorize" (the documents declare an HTTP
bearer scheme, so the dialog offers a token field), picks the order service's
document, and places an order with "Try it out" on `POST /api/v1/orders`.

Prints one JSON line: the status the page shows for the login, the status and body
it shows for the order, and the page's visible text. The test judges them, and the order itself, through the API. On a failure it
exits 1 saying which step failed, with the page's visible text.
"""

import argparse
import json
import sys

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 2000)


class StepFailed(Exception):
    pass


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class SwaggerUi:
    def __init__(self, driver, deadline):
        self.driver = driver
        self.wait = WebDriverWait(driver, deadline)

    def page_text(self):
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except WebDriverException as e:
            return f"(no page text: {e.msg})"

    def step(self, name, action):
        """Run one step; on any failure say which, with what the page shows."""
        try:
            return action()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            detail = getattr(e, "msg", None) or repr(e)
            raise StepFailed(
                f"step '{name}' failed: {detail}\n--- the page's visible text ---\n{self.page_text()}"
            ) from e

    def visible(self, css, within=None):
        root = within or self.driver
        return self.wait.until(
            lambda _: next((e for e in root.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None),
            f"nothing visible matches {css!r}",
        )

    def click(self, css, within=None):
        element = self.visible(css, within)
        self.wait.until(lambda _: element.is_enabled(), f"{css!r} stays disabled")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()
        return element

    def open(self, url):
        self.driver.get(url)
        self.visible("#swagger-ui .topbar select")
        self.visible("#swagger-ui .information-container .title")

    def choose_document(self, name, title):
        select = Select(self.visible("#swagger-ui .topbar select"))
        select.select_by_visible_text(name)
        self.wait.until(
            lambda _: title in self.visible("#swagger-ui .information-container .title").text,
            f"the document titled {title!r} did not show",
        )
        self.visible("#swagger-ui .opblock")

    def operation(self, method, path):
        """The operation block of `method path`, expanded."""

        def find(_):
            for block in self.driver.find_elements(By.CSS_SELECTOR, f".opblock.opblock-{method}"):
                shown = block.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
                if shown and shown[0].get_attribute("data-path") == path:
                    return block
            return None

        block = self.wait.until(find, f"no operation {method.upper()} {path}")
        if "is-open" not in (block.get_attribute("class") or ""):
            self.click(".opblock-summary-control", block)
            self.wait.until(lambda _: "is-open" in (block.get_attribute("class") or ""), "it did not open")
        return block

    def try_it_out(self, block, body):
        self.click(".try-out__btn", block)
        area = self.visible("textarea.body-param__text", block)
        area.clear()
        area.send_keys(json.dumps(body))
        self.wait.until(
            lambda _: json.loads(area.get_attribute("value") or "null") == body,
            f"the request body field does not hold {json.dumps(body)}",
        )
        self.click("button.execute", block)
        return self.answer(block)

    def answer(self, block):
        """The status and body of the live response shown under `block`."""
        table = self.visible(".live-responses-table", block)
        status = self.visible(".response .response-col_status", table).text.strip()
        body = self.visible(".response .response-col_description pre.microlight", table).text
        return {"status": int(status.split()[0]), "body": body}

    def screenshot(self, block, path):
        """The operation from its summary down to the answer, as a user sees it."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", block)
        if not self.driver.save_screenshot(path):
            raise RuntimeError(f"chromium wrote no screenshot to {path}")

    def authorize(self, token):
        self.click("#swagger-ui .scheme-container .auth-wrapper button.authorize")
        dialog = self.visible(".dialog-ux .modal-ux")
        self.visible("#auth-bearer-value", dialog).send_keys(token)
        self.click("button.modal-btn.authorize", dialog)
        # Authorized: the token is hidden and the dialog offers "Logout".
        self.wait.until(
            lambda _: any(b.text == "Logout" for b in dialog.find_elements(By.CSS_SELECTOR, "button.modal-btn")),
            "the dialog did not take the token (no Logout button)",
        )
        self.click("button.btn-done", dialog)
        self.wait.until(
            ec.invisibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux .modal-ux")), "the dialog stays open"
        )
        self.visible("#swagger-ui .scheme-container button.authorize.locked")


def token_of(login):
    if login["status"] != 200:
        raise RuntimeError(f"the login answered {login['status']}: {login['body']}")
    return json.loads(login["body"])["token"]


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--gateway", required=True)
    args.add_argument("--email", required=True)
    args.add_argument("--password", required=True)
    args.add_argument("--order", required=True, help="the order's request body, JSON")
    args.add_argument("--screenshot", required=True)
    args.add_argument("--deadline", type=float, default=30.0, help="seconds each wait may take")
    a = args.parse_args()

    driver = start_browser()
    try:
        ui = SwaggerUi(driver, a.deadline)
        ui.step("open /docs and wait for Swagger UI", lambda: ui.open(f"{a.gateway}/docs/"))
        ui.step("pick the customer document", lambda: ui.choose_document("customer", "Customer service"))
        login_op = ui.step("expand POST /api/v1/customers/login", lambda: ui.operation("post", "/api/v1/customers/login"))
        login = ui.step(
            "log in with Try it out",
            lambda: ui.try_it_out(login_op, {"email": a.email, "password": a.password}),
        )
        token = ui.step("read the token from the login answer", lambda: token_of(login))
        ui.step("pick the order document", lambda: ui.choose_document("order", "Order service"))
        ui.step("log in through Authorize", lambda: ui.authorize(token))
        order_op = ui.step("expand POST /api/v1/orders", lambda: ui.operation("post", "/api/v1/orders"))
        placed = ui.step("place the order with Try it out", lambda: ui.try_it_out(order_op, json.loads(a.order)))
        ui.step("take the screenshot", lambda: ui.screenshot(order_op, a.screenshot))
        print(json.dumps({"login_status": login["status"], "order": placed, "page_text": ui.page_text()}))
    except StepFailed as e:
        print(str(e), file=sys.stderr)
        return 1
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
