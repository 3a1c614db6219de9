//! The backup objects against Kubernetes' schemas (`kubernetes-validate --strict`),
//! and the CRD's rules on `backup` (`validate_custom_resources.py`: the schema and the
//! CEL rules, transition rules included).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{children, common, on_s3, on_volume, restore_job, system_with};

/// `kubernetes-validate --strict` over `objects`, written to `file`.
fn validate_strict(file: &Path, objects: &[Value]) {
    std::fs::write(file, sales_operator::yaml::documents(objects)).unwrap();
    let report = common::validate_strict(file);
    assert_eq!(
        report.matches(" passed ").count(),
        objects.len(),
        "{report}"
    );
}

#[test]
fn backup_objects_pass_kubernetes_validate_strict() {
    let dir = common::scratch_dir("backup-objects");
    for (name, backup) in [("volume", on_volume()), ("s3", on_s3())] {
        let system = system_with(backup);
        let all = children(&system);
        let mut objects: Vec<Value> = all
            .iter()
            .filter(|c| {
                ["CronJob", "PersistentVolumeClaim", "NetworkPolicy"]
                    .contains(&c["kind"].as_str().unwrap_or_default())
            })
            .cloned()
            .collect();
        for dump in ["latest", "list", "20250131T030000Z.dump"] {
            objects.push(restore_job(&system, "order", dump));
        }
        validate_strict(&dir.join(format!("{name}.yaml")), &objects);
    }
}

/// Results of `validate_custom_resources.py` (the CRD's schema and CEL rules), per file.
fn crd_errors(old: Option<&Path>, files: &[PathBuf]) -> Vec<Vec<String>> {
    let crd = common::workspace().join("operator/crd/salessystem.yaml");
    common::validate_custom_resources(old, &crd, files)
        .into_iter()
        .map(|(_, errors)| errors)
        .collect()
}

#[test]
fn the_crd_refuses_no_target_two_targets_and_bad_schedules() {
    let dir = common::scratch_dir("backup-crd");
    let both = {
        let mut b = on_volume();
        b["s3"] = on_s3()["s3"].clone();
        b
    };
    let cases: Vec<(Value, Option<&str>)> = vec![
        (on_volume(), None),
        (on_s3(), None),
        (
            json!({"schedule": "*/15 6-22 * * MON-FRI", "volume": {}}),
            None,
        ),
        (
            json!({"schedule": "0 3 * * *"}),
            Some("give exactly one target, volume or s3"),
        ),
        (both, Some("give exactly one target, volume or s3")),
        (
            json!({"schedule": "daily", "volume": {}}),
            Some("postgres backup schedule: five cron fields"),
        ),
        (
            json!({"schedule": "0 3 * *", "volume": {}}),
            Some("postgres backup schedule: five cron fields"),
        ),
        (
            json!({"schedule": "0 3 * * *", "retention": 0, "volume": {}}),
            Some("retention"),
        ),
        (json!({"volume": {}}), Some("schedule")),
    ];
    let files: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, (backup, _))| {
            let file = dir.join(format!("{i}.yaml"));
            std::fs::write(
                &file,
                serde_json::to_string(&system_with(backup.clone())).unwrap(),
            )
            .unwrap();
            file
        })
        .collect();
    let results = crd_errors(None, &files);
    assert_eq!(results.len(), cases.len());
    for ((backup, expected), errors) in cases.iter().zip(&results) {
        match expected {
            None => assert!(errors.is_empty(), "{backup} is refused: {errors:?}"),
            Some(message) => assert!(
                errors.iter().any(|e| e.contains(message)),
                "{backup}: expected {message:?}, got {errors:?}"
            ),
        }
    }

    // The volume's class cannot change once the claim exists; its size can grow.
    let with_class = |class: &str, size: &str| {
        let mut system = system_with(on_volume());
        system["spec"]["postgres"]["managed"]["backup"]["volume"] =
            json!({"size": size, "storageClassName": class});
        system
    };
    let old = dir.join("old.yaml");
    std::fs::write(
        &old,
        serde_json::to_string(&with_class("standard", "5Gi")).unwrap(),
    )
    .unwrap();
    let grown = dir.join("grown.yaml");
    std::fs::write(
        &grown,
        serde_json::to_string(&with_class("standard", "8Gi")).unwrap(),
    )
    .unwrap();
    let moved = dir.join("moved.yaml");
    std::fs::write(
        &moved,
        serde_json::to_string(&with_class("fast", "5Gi")).unwrap(),
    )
    .unwrap();
    let results = crd_errors(Some(&old), &[grown, moved]);
    assert!(results[0].is_empty(), "{results:?}");
    assert!(
        results[1]
            .iter()
            .any(|e| e.contains("storageClassName cannot change")),
        "{results:?}"
    );
}
