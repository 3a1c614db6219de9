//! The operator exports every metric name the Grafana dashboards and alert rules
//! use (`observability/operator-metrics.txt`).

#[test]
fn the_operator_exports_what_the_dashboards_use() {
    let list = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../observability/operator-metrics.txt"
    ))
    .unwrap_or_default();
    let wanted: Vec<&str> = list
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        wanted.len() >= 4,
        "operator-metrics.txt lists too little: {wanted:?}"
    );
    // Every family is registered in `Metrics::new`, under the literal name.
    let source = include_str!("../src/metrics.rs");
    for name in wanted {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "the operator does not export {name}"
        );
    }
}
