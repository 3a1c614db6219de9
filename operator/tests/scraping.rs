//! What Prometheus scrapes through the ServiceMonitor the operator makes: every
//! service's admin port, with the services' own `service` label kept and `up`
//! labelled with the same service name, as the dashboards and alerts expect
//! (`observability/README.md`, "What Prometheus must scrape").

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use sales_operator::catalogue::AppService;
use serde_json::{Value, json};

fn children(example: &str) -> Vec<Value> {
    let yaml = std::fs::read_to_string(common::workspace().join("examples").join(example)).unwrap();
    let mut system = sales_operator::render::parse(&yaml).unwrap();
    system.spec.observability.service_monitor.enabled = true;
    sales_operator::children::desired_for(&system, None)
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .collect()
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| &labels[k] == v)
}

#[test]
fn the_service_monitor_keeps_the_services_labels_and_names_each_target() {
    for example in ["salessystem.yaml", "salessystem-autoscaling.yaml"] {
        let children = children(example);
        let monitor = children
            .iter()
            .find(|c| c["kind"] == "ServiceMonitor")
            .expect("a ServiceMonitor");
        let endpoint = &monitor["spec"]["endpoints"][0];
        assert_eq!(endpoint["port"], "admin");
        assert_eq!(endpoint["honorLabels"], true, "{endpoint}");
        assert_eq!(
            endpoint["relabelings"],
            json!([{
                "action": "replace",
                "sourceLabels": ["__meta_kubernetes_service_label_sales_system_io_service"],
                "targetLabel": "service",
            }])
        );

        // Every scraped Service names its service as the services name themselves.
        let scraped: Vec<&Value> = children
            .iter()
            .filter(|c| c["kind"] == "Service")
            .filter(|s| selects(&monitor["spec"]["selector"], &s["metadata"]["labels"]))
            .collect();
        let named: BTreeSet<&str> = scraped
            .iter()
            .map(|s| {
                assert!(
                    s["spec"]["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == "admin"),
                    "{s}"
                );
                s["metadata"]["labels"]["sales-system.io/service"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no service label: {}", s["metadata"]["name"]))
            })
            .collect();
        let every: BTreeSet<&str> = AppService::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(named, every, "{example}");
        // Databases, the broker and Redis are not scraped as services.
        assert!(scraped.iter().all(|s| {
            let name = s["metadata"]["name"].as_str().unwrap();
            !name.ends_with("-db") && !name.contains("rabbitmq") && !name.contains("redis")
        }));
    }
}
