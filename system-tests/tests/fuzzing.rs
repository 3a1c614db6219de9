//! Every OpenAPI document, fuzzed (issue 11): schemathesis (PyPI, pinned in
//! `xtask/src/tools.rs`) generates requests from the live `/openapi.json` of each
//! service and of the gateway, as the documents describe them, and checks every
//! answer:
//!
//! - `not_a_server_error`: no 5xx, whatever the input;
//! - `status_code_conformance`: the status is one the document lists for the route;
//! - `content_type_conformance` and `response_schema_conformance`: the body is what
//!   the document says it is.
//!
//! And one measure of the documents themselves: of the requests generated as
//! *valid* (schemathesis's positive mode), how many the service refuses as invalid
//! (a 400, 413, 415 or 422 whose code says the input is wrong). A document whose
//! constraints say what the route accepts makes that zero.
//!
//! The passes, 22 of them: the gateway's own document, and each service's document
//! as the gateway serves it, through the gateway with an admin's access token; then
//! each service's own document straight to the service, as the admin and as a
//! customer (tokens signed as the gateway signs them). The admin's straight passes
//! run every phase of schemathesis (examples, coverage of every boundary, random
//! requests, linked sequences); the others leave out the coverage phase, whose cases
//! are the same documents' and most of a run's time.
//!
//! Bounded for CI: a fixed seed, 20 examples per operation (fewer on the other
//! passes), one worker per run and two runs at once: about three minutes on two
//! cores. Nothing is left behind: the system has its own databases, and
//! schemathesis runs in a temporary directory without its example database.
//!
//! `FUZZ_EXAMPLES=<n>` changes the examples per operation, `FUZZ_SEED=<n>` the seed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::Value;
use system_tests::{ADMIN_ID, Service, System, SystemOptions, Who};

/// The seed every run uses, so that a failure can be run again as it was.
const DEFAULT_SEED: u64 = 11;
/// Examples per operation straight to a service as the admin; the other passes
/// take a share of it.
const DEFAULT_EXAMPLES: u32 = 20;
/// Runs at once (each with one worker).
const RUNS_AT_ONCE: usize = 2;
/// A guard against a run that hangs (each request has its own 15 s limit), not a
/// measure of speed: the longest run takes about two minutes on two loaded cores, and
/// CI has been seen at twice the time of a quiet machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// What schemathesis checks on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// Error codes that mean "your request is wrong" (as opposed to "the shop says
/// no": `insufficient_stock`, `payment_exists`...). A valid request answered with
/// one of these is a document that does not say what the route accepts.
const INVALID_INPUT_CODES: [&str; 7] = [
    "validation_failed",
    "malformed_json",
    "invalid_path",
    "invalid_query",
    "unsupported_media_type",
    "payload_too_large",
    "bad_request",
];

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The schemathesis of the tools venv (`cargo xtask infra up` installs it).
fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("SALES_TOOLS_VENV").unwrap_or_else(|| {
        panic!(
            "SALES_TOOLS_VENV is not set: this test runs schemathesis from the tools venv. Run it \
             through `cargo xtask test`, or `eval \"$(cargo xtask infra up 2>/dev/null)\"` first"
        )
    });
    let path = PathBuf::from(venv).join("bin/schemathesis");
    assert!(
        path.is_file(),
        "{} is missing: the tools venv predates schemathesis (xtask/src/tools.rs); run \
         `cargo xtask infra up` again",
        path.display()
    );
    path
}

/// One run of schemathesis against one document.
struct Pass {
    name: String,
    /// Where the document is.
    schema: String,
    /// Where its operations are served.
    base: String,
    token: String,
    examples: u32,
    /// Which of schemathesis's phases run (`--phases`).
    phases: &'static str,
    /// Operations left out (`--exclude-path`).
    exclude_paths: Vec<&'static str>,
}

/// Every phase: the document's examples, its boundaries (coverage: every minimum,
/// maximum, length, pattern and missing field, valid and not), random requests, and
/// sequences that follow the links between operations.
const ALL_PHASES: &str = "examples,coverage,fuzzing,stateful";
/// The same but the coverage phase, whose boundary cases the admin's passes
/// straight to each service have sent already: it is most of a run's time.
const WITHOUT_COVERAGE: &str = "examples,fuzzing,stateful";

/// What a run found.
struct Outcome {
    name: String,
    passed: bool,
    elapsed: Duration,
    /// schemathesis's report, from its failures on.
    report: String,
    refusals: Refusals,
}

/// Per operation: requests generated as valid, and those refused as invalid (with
/// up to three of them).
#[derive(Default)]
struct Refusals {
    operations: BTreeMap<String, (usize, usize, Vec<String>)>,
}

impl Refusals {
    fn positive(&self) -> usize {
        self.operations.values().map(|o| o.0).sum()
    }

    fn refused(&self) -> usize {
        self.operations.values().map(|o| o.1).sum()
    }

    fn refused_operations(&self) -> impl Iterator<Item = (&String, &(usize, usize, Vec<String>))> {
        self.operations.iter().filter(|(_, o)| o.1 > 0)
    }
}

/// Read schemathesis's event log (`--report ndjson`): every case generated as
/// valid, and whether its answer called it invalid.
fn read_refusals(ndjson: &Path) -> Refusals {
    let mut refusals = Refusals::default();
    let text = std::fs::read_to_string(ndjson).unwrap_or_default();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(recorder) = event
            .get("ScenarioFinished")
            .and_then(|s| s.get("recorder"))
        else {
            continue;
        };
        let cases = recorder["cases"].as_object().cloned().unwrap_or_default();
        for (id, case) in cases {
            let value = &case["value"];
            if value["meta"]["generation"]["mode"] != "positive" {
                continue;
            }
            let interaction = &recorder["interactions"][&id];
            let Some(status) = interaction["response"]["status_code"].as_u64() else {
                continue;
            };
            let operation = format!(
                "{} {}",
                value["method"].as_str().unwrap_or("?"),
                value["path"].as_str().unwrap_or("?")
            );
            let entry = refusals.operations.entry(operation).or_default();
            entry.0 += 1;
            if !matches!(status, 400 | 413 | 415 | 422) {
                continue;
            }
            let body = decode_body(&interaction["response"]["content"]);
            let code = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|b| b["error"]["code"].as_str().map(str::to_owned));
            // A seed's envelope has no code: its 400s are all about the input.
            let invalid = code
                .as_deref()
                .is_none_or(|c| INVALID_INPUT_CODES.contains(&c));
            if invalid {
                entry.1 += 1;
                if entry.2.len() < 3 {
                    let request = &interaction["request"];
                    entry.2.push(format!(
                        "{} {} {} -> {status} {}",
                        request["method"].as_str().unwrap_or("?"),
                        request["uri"].as_str().unwrap_or("?"),
                        shorten(&decode_body(&request["body"]), 300),
                        shorten(&body, 300)
                    ));
                }
            }
        }
    }
    refusals
}

/// A recorded body: `{"$base64": ...}`, or nothing.
fn decode_body(content: &Value) -> String {
    let Some(encoded) = content["$base64"].as_str() else {
        return String::new();
    };
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::with_capacity(encoded.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for c in encoded.bytes().filter(|c| *c != b'=') {
        let Some(value) = ALPHABET.iter().position(|a| *a == c) else {
            break;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(max).collect::<String>())
    }
}

/// Run one pass in `dir` (schemathesis's working directory).
async fn run(pass: &Pass, dir: &Path, seed: u64) -> Outcome {
    let ndjson = dir.join(format!("{}.ndjson", pass.name.replace([' ', '/'], "-")));
    let mut cmd = tokio::process::Command::new(schemathesis());
    cmd.current_dir(dir)
        .arg("run")
        .arg(&pass.schema)
        .args(["--url", &pass.base])
        .args(["--header", &format!("Authorization: Bearer {}", pass.token)])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &pass.examples.to_string()])
        .args(["--phases", pass.phases])
        .args(["--seed", &seed.to_string()])
        .args(["--workers", "1"])
        .args(["--request-timeout", "15"])
        .args(["--generation-database", "none"])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&ndjson)
        .args(["--no-color", "--output-truncate", "false"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for path in &pass.exclude_paths {
        cmd.args(["--exclude-path", path]);
    }
    let started = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run schemathesis: {e}"));
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await;
    let elapsed = started.elapsed();
    let (passed, text) = match output {
        Ok(Ok(out)) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Ok(Err(e)) => (false, format!("schemathesis failed to run: {e}")),
        Err(_) => (
            false,
            format!("schemathesis did not finish within {RUN_TIMEOUT:?}"),
        ),
    };
    // The report proper: what failed, how to reproduce it, and the summary.
    let report = match text
        .find("=== FAILURES")
        .or_else(|| text.find("=== ERRORS"))
    {
        Some(at) => text[at..].to_owned(),
        None => text
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"),
    };
    Outcome {
        name: pass.name.clone(),
        passed,
        elapsed,
        report,
        refusals: read_refusals(&ndjson),
    }
}

/// Run `passes`, [`RUNS_AT_ONCE`] at a time, saying how each went.
async fn run_all(passes: &[Pass], dir: &Path, seed: u64) -> Vec<Outcome> {
    let outcomes = futures::stream::iter(passes)
        .map(|pass| run(pass, dir, seed))
        .buffered(RUNS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    for outcome in &outcomes {
        eprintln!(
            "fuzzing: {:<28} {} in {:>5.1}s; valid requests refused as invalid: {}/{}",
            outcome.name,
            if outcome.passed { "passed" } else { "FAILED" },
            outcome.elapsed.as_secs_f64(),
            outcome.refusals.refused(),
            outcome.refusals.positive(),
        );
    }
    outcomes
}

/// Every service behind the gateway.
const SERVICES: [Service; 7] = [
    Service::Product,
    Service::Order,
    Service::Customer,
    Service::Payment,
    Service::Inventory,
    Service::Shipping,
    Service::Notification,
];

#[tokio::test]
async fn every_document_holds_under_fuzzing() {
    let seed = env_number("FUZZ_SEED", DEFAULT_SEED);
    let examples = env_number("FUZZ_EXAMPLES", DEFAULT_EXAMPLES);
    // A password hash takes a second or two in a debug build on shared cores, and two
    // runs go at once: the limits that turn a slow answer into a 503 (`busy`) or 504
    // are for load, which this test is not about.
    let env = HashMap::from([
        (
            Service::Customer,
            vec![("HASHING_WAIT".to_owned(), "30s".to_owned())],
        ),
        (
            Service::Gateway,
            vec![("UPSTREAM_TIMEOUT".to_owned(), "30s".to_owned())],
        ),
    ]);
    let sys = System::start_with(SystemOptions {
        logs_to_files: true,
        env,
        ..SystemOptions::default()
    })
    .await;
    let dir = std::env::temp_dir().join(format!("sales-fuzzing-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();

    // Through the gateway first, with an admin's access token: the direct passes
    // below log the admin out and fail their password, which the gateway would
    // see. Logging out here would end this very token, so that route is left out
    // (the attack tests cover it).
    let admin_token = sys.admin_token().await;
    let (customer_id, _) = sys.register("fuzzing@example.com", "Fuzzing").await;
    let gateway = sys.gateway();
    let mut passes = vec![Pass {
        name: "gateway".into(),
        schema: format!("{gateway}/openapi.json"),
        base: gateway.clone(),
        token: admin_token.clone(),
        examples,
        phases: ALL_PHASES,
        exclude_paths: vec![],
    }];
    for service in SERVICES {
        passes.push(Pass {
            name: format!("gateway -> {}", service.name()),
            schema: format!("{gateway}/openapi/{}.json", service.name()),
            base: gateway.clone(),
            token: admin_token.clone(),
            examples: examples.div_ceil(2),
            phases: WITHOUT_COVERAGE,
            exclude_paths: if service == Service::Customer {
                vec!["/api/v1/customers/logout"]
            } else {
                vec![]
            },
        });
    }
    let started = Instant::now();
    let mut outcomes = run_all(&passes, &dir, seed).await;

    // Then straight to each service, with tokens signed now (they live ten minutes).
    let mut passes = Vec::new();
    for service in SERVICES {
        passes.push(Pass {
            name: format!("{} as admin", service.name()),
            schema: format!("{}/openapi.json", sys.url(service)),
            base: sys.url(service),
            token: sys.token_for(service, Who::Admin(ADMIN_ID)),
            examples,
            phases: ALL_PHASES,
            exclude_paths: vec![],
        });
    }
    for service in SERVICES {
        passes.push(Pass {
            name: format!("{} as a customer", service.name()),
            schema: format!("{}/openapi.json", sys.url(service)),
            base: sys.url(service),
            token: sys.token_for(service, Who::Customer(customer_id)),
            examples: examples.div_ceil(4),
            phases: WITHOUT_COVERAGE,
            exclude_paths: vec![],
        });
    }

    outcomes.extend(run_all(&passes, &dir, seed).await);
    eprintln!(
        "fuzzing: {} passes in {:.0}s",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );

    let mut problems = String::new();
    for outcome in &outcomes {
        if !outcome.passed {
            let _ = writeln!(
                problems,
                "\n##### {}: schemathesis found failures (seed {seed})\n{}",
                outcome.name, outcome.report
            );
        }
        if outcome.refusals.refused() > 0 {
            let _ = writeln!(
                problems,
                "\n##### {}: valid requests refused as invalid (the document does not say what the route accepts)",
                outcome.name
            );
            for (operation, (positive, refused, samples)) in outcome.refusals.refused_operations() {
                let _ = writeln!(problems, "  {operation}: {refused} of {positive}");
                for sample in samples {
                    let _ = writeln!(problems, "      {sample}");
                }
            }
        }
    }
    if !problems.is_empty() {
        // What the services logged about their 5xx answers.
        for (service, log) in sys.logs() {
            let errors: Vec<&str> = log
                .lines()
                // Messages a consumer could not handle (a shipment of an order that does not
                // exist, made up by the fuzzer) are not answers to requests.
                .filter(|l| l.contains("\"ERROR\"") && !l.contains("sales_platform::messaging"))
                .take(20)
                .collect();
            if !errors.is_empty() {
                let _ = writeln!(
                    problems,
                    "\n##### {} logged these errors answering requests:\n{}",
                    service.name(),
                    errors.join("\n")
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    sys.stop().await;
    assert!(problems.is_empty(), "{problems}");
}
