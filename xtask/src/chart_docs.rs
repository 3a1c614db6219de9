//! `cargo xtask chart-docs`: the value table of every chart's README, made from the
//! chart's `values.schema.json` (each value's `description`) and `values.yaml` (its
//! default and type). `--check` (a step of `cargo xtask test`) only says which README
//! is not current.
//!
//! A row is a value whose schema has a `description`; a value without one that holds
//! a non-empty map is listed by its keys instead; any other value without one is an
//! error, so every value is listed. The table sits between [`BEGIN`] and [`END`]
//! in `charts/<chart>/README.md`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

/// The line the table follows.
pub const BEGIN: &str = "<!-- values-table: generated from values.schema.json (descriptions) and values.yaml \
     (defaults) by `cargo xtask chart-docs`; do not edit by hand -->";
/// The line after the table.
pub const END: &str = "<!-- end of values-table -->";
/// What the begin line starts with (older tables ended at the first blank line).
const BEGIN_PREFIX: &str = "<!-- values-table";

/// Writes every chart's table, or with `check` fails naming each chart whose README
/// is not what would be written.
pub fn run(root: &Path, check: bool) -> Result<()> {
    let mut stale = Vec::new();
    let charts = root.join("charts");
    let mut dirs: Vec<_> = std::fs::read_dir(&charts)
        .with_context(|| format!("cannot list {}", charts.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d.join("values.schema.json").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))
        };
        let schema: Json = serde_json::from_str(&read("values.schema.json")?)
            .with_context(|| format!("charts/{name}/values.schema.json"))?;
        let values: Yaml = serde_yaml_ng::from_str(&read("values.yaml")?)
            .with_context(|| format!("charts/{name}/values.yaml"))?;
        let table = value_table(&schema, &values).with_context(|| format!("charts/{name}"))?;
        let readme = read("README.md")?;
        let updated =
            with_table(&readme, &table).with_context(|| format!("charts/{name}/README.md"))?;
        if updated == readme {
            continue;
        }
        if check {
            stale.push(format!("charts/{name}/README.md"));
        } else {
            std::fs::write(dir.join("README.md"), updated)?;
            eprintln!("chart-docs: wrote the value table of charts/{name}/README.md");
        }
    }
    if !stale.is_empty() {
        bail!(
            "the value table of {} is not current with values.schema.json and values.yaml; \
             run `cargo xtask chart-docs`",
            stale.join(", ")
        );
    }
    Ok(())
}

/// `readme` with the text between the markers replaced by `table`.
pub fn with_table(readme: &str, table: &str) -> Result<String> {
    let Some(start) = readme.find(BEGIN_PREFIX) else {
        bail!("no `{BEGIN_PREFIX} ...` line to put the value table after");
    };
    let rest = &readme[start..];
    let end = match rest.find(END) {
        Some(i) => start + i + END.len(),
        None => start + rest.find("\n\n").unwrap_or(rest.len()),
    };
    Ok(format!(
        "{}{BEGIN}\n{table}{END}{}",
        &readme[..start],
        &readme[end..]
    ))
}

/// The Markdown table (header, rows, each line ending in a newline).
pub fn value_table(schema: &Json, values: &Yaml) -> Result<String> {
    let mut out = String::from(
        "| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n",
    );
    rows(schema, values, "", &mut out)?;
    Ok(out)
}

fn rows(schema: &Json, values: &Yaml, prefix: &str, out: &mut String) -> Result<()> {
    let Yaml::Mapping(map) = values else {
        return Ok(());
    };
    for (key, value) in map {
        let Some(key) = key.as_str() else {
            bail!("{prefix}: a key that is not a string");
        };
        let dotted = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        let Some(node) = schema.get("properties").and_then(|p| p.get(key)) else {
            bail!("`{dotted}` is in values.yaml but not in values.schema.json");
        };
        match node.get("description").and_then(Json::as_str) {
            Some(description) => {
                let _ = writeln!(
                    out,
                    "| `{dotted}` | {} | `{}` | {} |",
                    type_name(value),
                    default(value),
                    description.replace('|', "\\|")
                );
            }
            None if matches!(value, Yaml::Mapping(m) if !m.is_empty()) => {
                rows(node, value, &dotted, out)?;
            }
            None => bail!("`{dotted}` has no description in values.schema.json"),
        }
    }
    Ok(())
}

/// helm-docs' names of the types.
fn type_name(value: &Yaml) -> &'static str {
    match value {
        Yaml::Null => "null",
        Yaml::Bool(_) => "bool",
        Yaml::Number(n) if n.is_f64() => "float",
        Yaml::Number(_) => "int",
        Yaml::String(_) => "string",
        Yaml::Sequence(_) => "list",
        Yaml::Mapping(_) => "object",
        Yaml::Tagged(t) => type_name(&t.value),
    }
}

/// The value as JSON, with a space after `:` and `,`, keys in the file's order.
fn default(value: &Yaml) -> String {
    match value {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => Json::String(s.clone()).to_string(),
        Yaml::Sequence(items) => {
            let items: Vec<String> = items.iter().map(default).collect();
            format!("[{}]", items.join(", "))
        }
        Yaml::Mapping(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let key = k
                        .as_str()
                        .map_or_else(|| default(k), |s| Json::String(s.into()).to_string());
                    format!("{key}: {}", default(v))
                })
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Yaml::Tagged(t) => default(&t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Json {
        serde_json::json!({
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "description": "Pods of the | service."},
                "image": {
                    "type": "object",
                    "properties": {
                        "repository": {"type": "string", "description": "The image."},
                        "tag": {"type": "string", "description": "Its tag; empty: the chart's."}
                    }
                },
                "resources": {"type": "object", "description": "CPU and memory."},
                "nodePort": {"type": ["integer", "null"], "description": "A fixed port."}
            }
        })
    }

    const VALUES: &str = "replicas: 2\nimage:\n  repository: ghcr.io/x/order\n  tag: \"\"\n\
        resources:\n  requests: {cpu: 50m, memory: 64Mi}\n  limits: {memory: 1Gi}\n  list: [a, 1.5, true]\nnodePort: null\n";

    #[test]
    fn rows_follow_values_yaml_with_the_schema_descriptions() {
        let values: Yaml = serde_yaml_ng::from_str(VALUES).unwrap();
        let table = value_table(&schema(), &values).unwrap();
        assert_eq!(
            table,
            "| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n\
             | `replicas` | int | `2` | Pods of the \\| service. |\n\
             | `image.repository` | string | `\"ghcr.io/x/order\"` | The image. |\n\
             | `image.tag` | string | `\"\"` | Its tag; empty: the chart's. |\n\
             | `resources` | object | `{\"requests\": {\"cpu\": \"50m\", \"memory\": \"64Mi\"}, \"limits\": {\"memory\": \"1Gi\"}, \"list\": [\"a\", 1.5, true]}` | CPU and memory. |\n\
             | `nodePort` | null | `null` | A fixed port. |\n"
        );
    }

    #[test]
    fn a_value_without_a_description_is_an_error() {
        let values: Yaml =
            serde_yaml_ng::from_str("replicas: 1\nimage:\n  digest: \"\"\n").unwrap();
        let err = value_table(&schema(), &values).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`image.digest` is in values.yaml but not in values.schema.json"
        );
        let mut schema = schema();
        schema["properties"]["image"]["properties"]["tag"]
            .as_object_mut()
            .unwrap()
            .remove("description");
        let values: Yaml = serde_yaml_ng::from_str("image:\n  tag: v1\n").unwrap();
        let err = value_table(&schema, &values).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`image.tag` has no description in values.schema.json"
        );
    }

    #[test]
    fn the_table_replaces_what_is_between_the_markers() {
        let old = "# chart\n\n## Values\n\n<!-- values-table: old words -->\n| Key |\n| `x` |\n\nAfter.\n";
        let once = with_table(old, "| new |\n").unwrap();
        assert_eq!(
            once,
            format!("# chart\n\n## Values\n\n{BEGIN}\n| new |\n{END}\n\nAfter.\n")
        );
        let twice = with_table(&once, "| newer |\n").unwrap();
        assert_eq!(
            twice,
            format!("# chart\n\n## Values\n\n{BEGIN}\n| newer |\n{END}\n\nAfter.\n")
        );
        assert!(with_table("no marker", "| t |\n").is_err());
    }
}
