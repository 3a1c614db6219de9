//! Which image each service's pods run: `{image.repository}/<service>-service:{image.tag}`,
//! or the whole reference `services.<service>.image` gives (what skaffold sets).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sales_operator::crd::SalesSystem;

fn images(system: &SalesSystem) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = sales_operator::children::desired(system)
        .unwrap()
        .iter()
        .filter(|c| c.kind() == "Deployment")
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_owned(),
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_service_runs_its_own_image_when_one_is_given() {
    let yaml = r#"
apiVersion: sales-system.io/v1alpha1
kind: SalesSystem
metadata: {name: shop, namespace: sales, uid: 11111111-2222-3333-4444-555555555555}
spec:
  image: {repository: registry.example.com/team, tag: "1.2.3"}
  services:
    order:
      image: localhost:5001/order-service:dev@sha256:0000000000000000000000000000000000000000000000000000000000000001
"#;
    let system: SalesSystem = serde_yaml_ng::from_str(yaml).unwrap();
    let images = images(&system);
    let of = |name: &str| {
        images
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i.as_str())
    };
    assert_eq!(
        of("shop-order"),
        Some(
            "localhost:5001/order-service:dev@sha256:0000000000000000000000000000000000000000000000000000000000000001"
        )
    );
    assert_eq!(
        of("shop-gateway"),
        Some("registry.example.com/team/gateway-service:1.2.3")
    );
}
