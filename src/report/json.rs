//! JSON output: any report (probe, load, routes) as one pretty-printed document, the
//! contract of `SCHEMA_VERSION`.

use std::io::Write;

use serde::Serialize;

/// Writes `value` as one JSON document and a newline.
pub fn write<T: Serialize>(value: &T, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// The JSON Schemas (draft 2020-12) of the three documents, by file name under `schema/`:
/// the route report, the load report (`"kind": "load"`) and the app report (`"kind":
/// "app"`). Generated from the types as they serialize; every field is required (each is
/// always written, `null` when absent), and `schema_version` and `kind` are pinned.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    use crate::load::LoadReport;
    use crate::preflight::AppReport;
    use crate::report::Report;
    let generate = |root: schemars::Schema, kind: Option<&str>| {
        let mut value = root.to_value();
        require_every_property(&mut value);
        pin(&mut value, "schema_version", super::SCHEMA_VERSION.into());
        if let Some(kind) = kind {
            pin(&mut value, "kind", kind.into());
        }
        value
    };
    let generator = || {
        schemars::generate::SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator()
    };
    vec![
        (
            "route-report.schema.json",
            generate(generator().into_root_schema_for::<Report>(), None),
        ),
        (
            "load-report.schema.json",
            generate(
                generator().into_root_schema_for::<LoadReport>(),
                Some("load"),
            ),
        ),
        (
            "app-report.schema.json",
            generate(generator().into_root_schema_for::<AppReport>(), Some("app")),
        ),
    ]
}

/// Marks every property of every object schema required: no field is ever skipped.
fn require_every_property(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                let names = properties.keys().cloned().map(serde_json::Value::from);
                map.insert("required".into(), names.collect());
            }
            map.values_mut().for_each(require_every_property);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(require_every_property),
        _ => {}
    }
}

/// Replaces the root's property `name` with the one value it may take.
fn pin(value: &mut serde_json::Value, name: &str, constant: serde_json::Value) {
    if let Some(property) = value.pointer_mut(&format!("/properties/{name}")) {
        *property = serde_json::json!({ "const": constant });
    }
}
