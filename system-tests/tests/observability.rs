//! The observability files in `observability/`, checked against the tools and the
//! real system:
//!
//! - the alert rules pass `promtool check rules` and their unit tests, and every alert
//!   has a unit test that fires and one that does not;
//! - every PromQL query of every Grafana dashboard parses (`promtool check rules` on
//!   the queries written as recording rules);
//! - every metric a dashboard or an alert uses is exported by the running services,
//!   as a real Prometheus scrapes them; every dashboard query and every rule
//!   evaluates there without error (the operator's metrics, which need a cluster to
//!   run, are checked against their list, `observability/operator-metrics.txt`, which
//!   `operator/tests/metric_names.rs` checks against the operator's `/metrics`).
//!
//! The traces are checked in `traces.rs`.
//!
//! Needs Debian's `prometheus` package: `prometheus` and `promtool` on PATH.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Service, System, SystemOptions, run_tool};

// ------------------------------------------------------------------ files and tools

fn observability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../observability")
}

fn rules_dir() -> PathBuf {
    observability_dir().join("rules")
}

const RULES: &str = "sales-system.rules.yaml";
const RULE_TESTS: &str = "sales-system.rules.test.yaml";
/// Metric names the Kubernetes operator will export; dashboards and rules may use them
/// before it does.
const OPERATOR_METRICS: &str = "operator-metrics.txt";

/// `name` on PATH, or a failure that says how to get it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH. It comes with Debian's prometheus package: \
                 apt-get install -y --no-install-recommends prometheus"
            )
        })
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(what: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!(
            "sales-observability-{what}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------------ dashboards

struct Dashboard {
    file: String,
    json: Value,
}

fn dashboards() -> Vec<Dashboard> {
    let dir = observability_dir().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            Dashboard {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            }
        })
        .collect()
}

impl Dashboard {
    /// Every panel, those inside collapsed rows too.
    fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
            for p in panels.as_array().into_iter().flatten() {
                out.push(p);
                walk(&p["panels"], out);
            }
        }
        let mut out = Vec::new();
        walk(&self.json["panels"], &mut out);
        out
    }

    /// `(panel title, expr)` of every query of every panel.
    fn queries(&self) -> Vec<(String, String)> {
        self.panels()
            .into_iter()
            .flat_map(|p| {
                let title = p["title"].as_str().unwrap_or_default().to_owned();
                p["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(move |t| t["expr"].as_str().map(|e| (title.clone(), e.to_owned())))
            })
            .collect()
    }

    fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .collect()
    }

    /// Names of the template variables (`datasource`, `service`...).
    fn variable_names(&self) -> Vec<String> {
        self.variables()
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The series selectors of the query variables: `label_values(SELECTOR, label)`.
    fn variable_selectors(&self) -> Vec<(String, String)> {
        self.variables()
            .iter()
            .filter(|v| v["type"] == "query")
            .map(|v| {
                let name = v["name"].as_str().unwrap_or_default().to_owned();
                let query = v["query"]["query"]
                    .as_str()
                    .or_else(|| v["query"].as_str())
                    .unwrap_or_default();
                let selector = query
                    .strip_prefix("label_values(")
                    .and_then(|rest| rest.rfind(',').map(|i| rest[..i].trim().to_owned()))
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: variable {name}: expected label_values(selector, label), got {query:?}",
                            self.file
                        )
                    });
                (name, selector)
            })
            .collect()
    }

    /// Every PromQL expression with Grafana's variables replaced by concrete values.
    fn concrete_queries(&self) -> Vec<(String, String)> {
        let names = self.variable_names();
        let mut out: Vec<(String, String)> = self
            .queries()
            .into_iter()
            .map(|(title, expr)| (title, concrete(&expr, &names)))
            .collect();
        out.extend(
            self.variable_selectors()
                .into_iter()
                .map(|(name, sel)| (format!("variable {name}"), concrete(&sel, &names))),
        );
        out
    }
}

/// Grafana's built-in variables and the dashboards' own, replaced by values that make
/// the query valid PromQL (every dashboard variable is used as a regex, `=~"$x"`).
fn concrete(expr: &str, variables: &[String]) -> String {
    let mut e = expr
        .replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    let mut names = variables.to_vec();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        e = e
            .replace(&format!("${{{name}}}"), ".*")
            .replace(&format!("${name}"), ".*");
    }
    let leftover = e
        .char_indices()
        .filter(|(_, c)| *c == '$')
        .map(|(i, _)| &e[i..])
        .find(|rest| {
            rest[1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '{')
        });
    assert!(
        leftover.is_none(),
        "a Grafana variable that is neither built in nor defined by the dashboard in {expr:?}"
    );
    e
}

// ------------------------------------------------------------------ metric names

/// PromQL words that are not metric names.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names a PromQL expression reads: identifiers that are not keywords,
/// functions, label names (in `{...}` or grouping lists), strings or durations.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_string = |i: &mut usize, quote: char| {
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    let next_non_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => skip_string(&mut i, c),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    let quote = chars[i];
                    if matches!(quote, '"' | '\'' | '`') {
                        skip_string(&mut i, quote);
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = next_non_space(i);
                let followed_by_paren = next < chars.len() && chars[next] == '(';
                let label_list = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if label_list && followed_by_paren {
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                } else if !followed_by_paren && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// A histogram's series count as its name: `x_bucket` -> `x` when `x_bucket` is meant.
fn base_name(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

/// The operator's metric names, from `observability/operator-metrics.txt`.
fn operator_metrics() -> BTreeSet<String> {
    let path = observability_dir().join(OPERATOR_METRICS);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

fn is_operator_metric(name: &str, operator: &BTreeSet<String>) -> bool {
    operator.contains(name) || operator.contains(base_name(name))
}

// ------------------------------------------------------------------ (a) alert rules

/// Alert names of the rule file.
fn alert_names() -> Vec<String> {
    std::fs::read_to_string(rules_dir().join(RULES))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_is_tested_firing_and_quiet() {
    let promtool = tool("promtool");
    let out = run_tool(
        Command::new(&promtool)
            .current_dir(rules_dir())
            .args(["check", "rules", RULES]),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_tool(
        Command::new(&promtool)
            .current_dir(rules_dir())
            .args(["test", "rules", RULE_TESTS]),
    );
    assert!(out.contains("SUCCESS"), "{out}");

    // Every alert has a `for:`, a severity, a summary and a description.
    let rules = std::fs::read_to_string(rules_dir().join(RULES)).unwrap();
    for block in rules.split("- alert:").skip(1) {
        let block = block.split("- name:").next().unwrap_or_default();
        let name = block.lines().next().unwrap_or_default().trim();
        for key in ["for:", "severity:", "summary:", "description:"] {
            assert!(
                block.lines().any(|l| l.trim_start().starts_with(key)),
                "alert {name} has no {key}"
            );
        }
    }

    // Every alert has an expectation that it fires and one that it does not.
    let tests = std::fs::read_to_string(rules_dir().join(RULE_TESTS)).unwrap();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("alertname:") else {
            continue;
        };
        let name = name.trim().to_owned();
        let expectation = lines[i + 1..]
            .iter()
            .find_map(|l| l.strip_prefix("exp_alerts:"))
            .unwrap_or_else(|| panic!("{RULE_TESTS}: no exp_alerts after alertname {name}"));
        if expectation.trim() == "[]" {
            quiet.insert(name);
        } else {
            firing.insert(name);
        }
    }
    let alerts = alert_names();
    assert!(alerts.len() >= 8, "too few alerts found: {alerts:?}");
    for alert in &alerts {
        assert!(firing.contains(alert), "no unit test where {alert} fires");
        assert!(
            quiet.contains(alert),
            "no unit test where {alert} stays quiet"
        );
    }
    for tested in firing.union(&quiet) {
        assert!(
            alerts.contains(tested),
            "{RULE_TESTS} tests {tested}, which is no alert"
        );
    }
}

// ------------------------------------------------------------------ (b) dashboard queries

#[test]
fn every_dashboard_is_well_formed_and_every_query_parses() {
    let promtool = tool("promtool");
    let boards = dashboards();
    let titles: Vec<&str> = boards
        .iter()
        .map(|b| b.json["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        boards.len(),
        5,
        "expected five dashboards, found {titles:?}"
    );
    let mut uids = BTreeSet::new();
    let mut rules = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    let mut count = 0;
    for board in &boards {
        let file = &board.file;
        let uid = board.json["uid"].as_str().unwrap_or_default();
        assert!(!uid.is_empty(), "{file}: no uid");
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        assert!(
            board.json["schemaVersion"].as_i64().unwrap_or(0) >= 36,
            "{file}: schemaVersion"
        );
        assert!(
            board.json["id"].is_null(),
            "{file}: id must be null to import anywhere"
        );
        let ds = board
            .variables()
            .into_iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{file}: no datasource variable"));
        assert_eq!(ds["type"], "datasource", "{file}");
        assert_eq!(ds["query"], "prometheus", "{file}");
        let mut ids = BTreeSet::new();
        for panel in board.panels() {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(panel["id"].as_i64().unwrap()),
                "{file}: panel id twice"
            );
            if matches!(panel["type"].as_str(), Some("row" | "text")) {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{file}: {title}"
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title} has no query");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{file}: {title}");
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{file}: {title}: empty query");
            }
        }
        // Multi-value variables only work as regex matchers.
        for name in board.variable_names().iter().filter(|n| *n != "datasource") {
            for (title, expr) in board.queries() {
                for used in [format!("${name}"), format!("${{{name}}}")] {
                    for (at, _) in expr.match_indices(&used) {
                        assert!(
                            expr[..at].ends_with("=~\""),
                            "{file}: {title}: ${name} must be used as =~\"${name}\": {expr}"
                        );
                    }
                }
            }
        }
        for (title, expr) in board.concrete_queries() {
            rules.push_str(&format!(
                "      # {file}: {}\n      - record: dashboard:query_{count}\n        expr: {}\n",
                title.replace('\n', " "),
                serde_json::to_string(&expr).unwrap()
            ));
            count += 1;
        }
    }
    let dir = ScratchDir::new("queries");
    let file = dir.0.join("dashboard-queries.yaml");
    std::fs::write(&file, &rules).unwrap();
    let out = run_tool(Command::new(&promtool).args(["check", "rules"]).arg(&file));
    assert!(
        out.contains(&format!("SUCCESS: {count} rules found")),
        "{out}"
    );
    assert!(count > 50, "only {count} queries found");
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"sum by (message_type) (rate(messages_published_total[10m])) - on (message_type) group_right ()
           label_replace(sum by (service, queue) (rate(messages_consumed_total{outcome=~"a|b"}[5m] offset 1h)), "x", "$1", "queue", "[^.]+[.](.+)")
           or max by (queue) (consumers_active) * 0 > bool 0.2
           and histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{route!~"/health|/ready"}[$__rate_interval])))
           unless up{job="x"} == 1e3"#,
    );
    let expected: BTreeSet<String> = [
        "messages_published_total",
        "messages_consumed_total",
        "consumers_active",
        "http_request_duration_seconds_bucket",
        "up",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names, expected);
    assert_eq!(
        base_name("message_lag_seconds_bucket"),
        "message_lag_seconds"
    );
}

// ------------------------------------------------------------------ (c) metrics exported

/// A Prometheus server scraping every service's admin `/metrics` each second, with
/// the alert rules loaded.
struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::Client,
    dir: ScratchDir,
}

impl Prometheus {
    async fn start(binary: &Path, sys: &System) -> Prometheus {
        let dir = ScratchDir::new("prometheus");
        let port = system_tests::free_port();
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
        );
        config.push_str(&format!(
            "rule_files:\n  - {}\n",
            serde_json::to_string(&rules_dir().join(RULES).canonicalize().unwrap()).unwrap()
        ));
        config.push_str(
            "scrape_configs:\n  - job_name: sales\n    honor_labels: true\n    static_configs:\n",
        );
        for service in Service::ALL {
            let admin = sys.admin_url(service);
            let target = admin.trim_start_matches("http://");
            config.push_str(&format!(
                "      - targets: [\"{target}\"]\n        labels: {{service: \"{}\"}}\n",
                service.name()
            ));
        }
        let config_file = dir.0.join("prometheus.yml");
        std::fs::write(&config_file, &config).unwrap();
        let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: sales_testkit::http_client(),
            dir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ready = prometheus
                .http
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus not ready in 30 s:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("prometheus.log")).unwrap_or_default()
    }

    /// `data` of an API answer; fails on an API error.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let body: Value = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    async fn metric_names(&self) -> BTreeSet<String> {
        self.api("/api/v1/label/__name__/values", &[])
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every metric name the dashboards and the rules use, with where.
fn used_metric_names(rule_queries: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for board in dashboards() {
        for (title, expr) in board.concrete_queries() {
            for name in metric_names(&expr) {
                used.entry(name)
                    .or_default()
                    .insert(format!("{}: {title}", board.file));
            }
        }
    }
    for (alert, expr) in rule_queries {
        for name in metric_names(expr) {
            used.entry(name)
                .or_default()
                .insert(format!("{RULES}: {alert}"));
        }
    }
    used
}

/// A message no consumer can read, straight onto the exchange: the notification
/// service parks it in `notification.create-order.dead`.
async fn publish_unreadable_create_order(sys: &System) {
    sys.publish_raw("create-order", b"this is not an envelope")
        .await;
}

/// Traffic that makes every kind of series appear: logins (good and bad), a
/// registration, catalogue reads (cache miss and hit), a bad token, 404s, an order
/// paid, one declined, one refused, and a dead letter.
async fn drive_traffic(sys: &System) {
    let admin = sys.admin_token().await;
    let lamp = sys.add_product_as(&admin, "OBS-LAMP", 4500, 5).await;
    let tv = sys.add_product_as(&admin, "OBS-TV", 60_000, 5).await;
    for _ in 0..2 {
        let (status, _) = sys
            .call(Method::GET, &format!("/api/v1/products/{lamp}"), None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, token) = sys.register("obs@example.com", "Obs").await;
    let (status, _) = sys
        .call(
            Method::POST,
            "/api/v1/customers/login",
            Some(json!({"email": "obs@example.com", "password": "not-the-password"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = sys
        .call(Method::GET, "/api/v1/orders", None, Some("not-a-token"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a bad token");
    let (status, _) = sys
        .call(Method::GET, "/api/v1/orders/987654", None, Some(&token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = sys.call(Method::GET, "/no-such-service", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let place = |product: i64, quantity: i32| {
        sys.call(
            Method::POST,
            "/api/v1/orders",
            Some(json!({"items": [{"product_id": product, "quantity": quantity}]})),
            Some(&token),
        )
    };
    let (status, order) = place(lamp, 1).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let paid = order["order_id"].as_i64().unwrap();
    let (status, body) = sys
        .call(
            Method::POST,
            &format!("/api/v1/orders/{paid}/pay"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 2 x 600.00 reaches the payment service's 1000.00 limit: declined.
    let (status, order) = place(tv, 2).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let declined = order["order_id"].as_i64().unwrap();
    let (status, body) = sys
        .call(
            Method::POST,
            &format!("/api/v1/orders/{declined}/pay"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    let (status, body) = place(lamp, 99).await;
    assert_eq!(status, StatusCode::CONFLICT, "refused: {body}");

    publish_unreadable_create_order(sys).await;
    let notification = sys.admin_url(Service::Notification);
    sales_testkit::eventually("a dead letter", Duration::from_secs(20), || async {
        let text = sales_testkit::http_get(format!("{notification}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .any(|l| {
                l.starts_with("messages_consumed_total{")
                    && l.contains(r#"queue="notification.create-order""#)
                    && l.contains(r#"outcome="dead_lettered""#)
            })
            .then_some(())
    })
    .await;
    // The paid order's shipment: the last message of the flow.
    sales_testkit::eventually("the shipment", Duration::from_secs(20), || async {
        let (_, list) = sys
            .call(
                Method::GET,
                &format!("/api/v1/shipments?order_id={paid}"),
                None,
                Some(&token),
            )
            .await;
        list.as_array()?.first().cloned()
    })
    .await;
}

#[tokio::test]
async fn every_metric_of_the_dashboards_and_rules_is_exported_by_the_running_system() {
    let prometheus_bin = tool("prometheus");
    // On Kafka: the services export the same families on both brokers, and on Kafka
    // also `kafka_*` (lag, rebalances), which the Kafka panels and alerts use.
    let sys = System::start_with(SystemOptions {
        kafka: true,
        ..SystemOptions::default()
    })
    .await;
    drive_traffic(&sys).await;
    let prom = Prometheus::start(&prometheus_bin, &sys).await;

    // Every target scraped and up.
    sales_testkit::eventually("every service scraped", Duration::from_secs(30), || async {
        let up = prom.api("/api/v1/query", &[("query", "up == 1")]).await;
        (up["result"].as_array()?.len() == Service::ALL.len()).then_some(())
    })
    .await;

    // The rules as Prometheus loaded them: all evaluated, none failing.
    let rules =
        sales_testkit::eventually("every rule evaluated", Duration::from_secs(30), || async {
            let data = prom.api("/api/v1/rules", &[]).await;
            let rules: Vec<Value> = data["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            rules
                .iter()
                .all(|r| r["health"] != "unknown")
                .then_some(rules)
        })
        .await;
    assert_eq!(rules.len(), alert_names().len(), "{rules:?}");
    for rule in &rules {
        assert_eq!(
            rule["health"], "ok",
            "rule {} fails: {}",
            rule["name"], rule["lastError"]
        );
    }
    let rule_queries: Vec<(String, String)> = rules
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["query"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    // Every name used is scraped, or is the operator's.
    let used = used_metric_names(&rule_queries);
    let operator = operator_metrics();
    for name in operator.iter() {
        assert!(
            used.keys().any(|u| base_name(u) == name || u == name),
            "{OPERATOR_METRICS} lists {name}, which no dashboard or rule uses"
        );
    }
    let expected: BTreeSet<String> = used
        .keys()
        .filter(|n| !is_operator_metric(n, &operator))
        .cloned()
        .collect();
    assert!(
        expected.len() >= 25,
        "too few metric names found: {expected:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let scraped = prom.metric_names().await;
        let missing: Vec<&String> = expected.difference(&scraped).collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break missing
                .into_iter()
                .map(|m| format!("{m} (used in {:?})", used[m]))
                .collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "used by a dashboard or rule but not exported by any service:\n{}",
        missing.join("\n")
    );
    let bases: BTreeSet<&str> = expected.iter().map(|n| base_name(n)).collect();
    eprintln!(
        "{} metric names checked against the scrape: {bases:?}; the operator's, listed only: {operator:?}",
        bases.len()
    );

    // Every dashboard query evaluates on the real data without error.
    for board in dashboards() {
        for (title, expr) in board.concrete_queries() {
            let body: Value = prom
                .http
                .get(format!("{}/api/v1/query", prom.url))
                .query(&[("query", expr.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                body["status"], "success",
                "{}: {title}: {expr}\n{body}",
                board.file
            );
        }
    }

    // The dead letter above is seen by its alert; the healthy parts page no one.
    let alerts = sales_testkit::eventually("SalesDeadLetters", Duration::from_secs(30), || async {
        let data = prom.api("/api/v1/alerts", &[]).await;
        let alerts = data["alerts"].as_array()?.clone();
        alerts
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == "SalesDeadLetters"
                    && a["labels"]["queue"] == "notification.create-order"
                    && a["labels"]["service"] == "notification"
            })
            .then_some(alerts)
    })
    .await;
    for alert in &alerts {
        let name = alert["labels"]["alertname"].as_str().unwrap_or_default();
        assert!(
            !matches!(
                name,
                "SalesBrokerDisconnected"
                    | "SalesQueueWithoutConsumer"
                    | "SalesOutboxStuck"
                    | "SalesOutboxPublishFailing"
                    | "SalesGatewayBreakerOpen"
                    | "SalesHttpHighErrorRate"
            ),
            "a healthy system raised {alert}"
        );
    }
    drop(prom);
    sys.stop().await;
}
