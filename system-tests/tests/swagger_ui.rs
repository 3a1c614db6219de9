//! The gateway's Swagger UI at `/docs`, driven in a real headless browser (issue 16):
//! Debian's chromium through chromium-driver, with selenium from the tools venv
//! (both installed by `cargo xtask test` / `cargo xtask infra up`,
//! `xtask/src/tools.rs`), running `tests/tools/swagger_ui.py`.
//!
//! The browser is the only client of the flow: in the customer service's document it
//! logs in with "Try it out" on `POST /api/v1/customers/login`; it pastes the token
//! into "Authorize" (the documents declare an HTTP bearer scheme: the dialog offers a
//! token field); in the order service's document it places an order with "Try it
//! out" on `POST /api/v1/orders`. The script reports what the page shows; the API is
//! the judge: the order exists for that customer, and its stock is reserved.
//!
//! Each run writes the screenshot of the answered order under the target directory
//! (`target/tmp/swagger-ui-order.png`); with `SALES_UPDATE_DOC_IMAGES=1` it is also
//! copied to `docs/images/swagger-ui-order.png`, which the README shows (a test run
//! leaves the working tree as it found it otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{CUSTOMER_PASSWORD, System};

/// A guard against a browser that hangs (each wait in the script has its own 30 s
/// deadline); a run takes a few seconds.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// The tools venv's Python, which has selenium.
fn python() -> PathBuf {
    let venv = std::env::var_os("SALES_TOOLS_VENV").unwrap_or_else(|| {
        panic!(
            "SALES_TOOLS_VENV is not set: this test runs selenium from the tools venv. Run it \
             through `cargo xtask test`, or `eval \"$(cargo xtask infra up 2>/dev/null)\"` first"
        )
    });
    let python = PathBuf::from(venv).join("bin/python");
    assert!(python.is_file(), "{} is missing", python.display());
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(tool).is_file(),
            "{tool} is missing: install Debian's chromium and chromium-driver \
             (`cargo xtask infra up` does, as root)"
        );
    }
    python
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("system-tests sits in the workspace")
        .to_path_buf()
}

/// Run the browser script; returns what it printed (one JSON line).
async fn drive_swagger_ui(gateway: &str, email: &str, order: &Value, screenshot: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/swagger_ui.py");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&script)
        .args(["--gateway", gateway, "--email", email])
        .args(["--password", CUSTOMER_PASSWORD])
        .args(["--order", &order.to_string()])
        .arg("--screenshot")
        .arg(screenshot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser did not finish in {RUN_TIMEOUT:?}"))
        .expect("the browser script's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "driving Swagger UI failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the script printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

#[tokio::test]
async fn a_customer_logs_in_and_places_an_order_in_swagger_ui() {
    let sys = System::start().await;
    let admin = sys.admin_token().await;
    let product_id = sys.add_product_as(&admin, "FRENCH-PRESS", 3450, 5).await;
    let email = "browser.customer@example.com";
    let (customer_id, token) = sys.register(email, "Browser Customer").await;

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("swagger-ui-order.png");
    let _ = std::fs::remove_file(&screenshot);
    let order = json!({"items": [{"product_id": product_id, "quantity": 2}]});
    let page = drive_swagger_ui(&sys.gateway(), email, &order, &screenshot).await;

    // What the page showed.
    let page_text = page["page_text"].as_str().unwrap_or_default();
    assert_eq!(
        page["login_status"], 200,
        "step 'log in with Try it out' showed another status; the page:\n{page_text}"
    );
    assert_eq!(
        page["order"]["status"], 201,
        "step 'place the order with Try it out' showed another status; the page:\n{page_text}"
    );
    let shown = page["order"]["body"].as_str().unwrap_or_default();
    let placed: Value = serde_json::from_str(shown).unwrap_or_else(|e| {
        panic!("step 'place the order': the answer shown is not JSON ({e}); the page:\n{page_text}")
    });
    assert_eq!(placed["status"], "PENDING", "the order shown: {placed}");
    assert_eq!(
        placed["customer_id"], customer_id,
        "the order shown: {placed}"
    );
    let order_id = placed["order_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no order_id in the order shown: {placed}"));

    // The API: the order is there, the customer's, and its stock is reserved.
    let (status, stored) = sys
        .call(
            Method::GET,
            &format!("/api/v1/orders/{order_id}"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["status"], "PENDING", "{stored}");
    assert_eq!(stored["customer_id"], customer_id, "{stored}");
    assert_eq!(stored["items"][0]["product_id"], product_id, "{stored}");
    assert_eq!(stored["items"][0]["quantity"], 2, "{stored}");
    assert!(stored["reservation_id"].is_i64(), "{stored}");
    assert_eq!(sys.stock("FRENCH-PRESS").await, (5, 2, 3));

    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", screenshot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var("SALES_UPDATE_DOC_IMAGES").is_ok_and(|v| v == "1") {
        let images = workspace_root().join("docs/images");
        std::fs::create_dir_all(&images).expect("docs/images");
        std::fs::write(images.join("swagger-ui-order.png"), &png).expect("docs image");
    }
    sys.stop().await;
}
