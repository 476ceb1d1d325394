//! An SAP Application Router folder (`xs-app.json`): are WebSockets enabled, does a route
//! match the WebSocket path, and is its destination defined (`default-env.json` or the
//! manifest's `destinations` env)?

use std::path::Path;

use crate::diagnose::Code;

/// What is wrong with the approuter's configuration for `path`: codes with details.
pub fn check(dir: &Path, path: &str, manifest_destinations: Option<&str>) -> Vec<(Code, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("xs-app.json")) else {
        return Vec::new();
    };
    let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else {
        return vec![(
            Code::ApprouterRouteMissing,
            "xs-app.json is not valid JSON".to_owned(),
        )];
    };
    let mut found = Vec::new();
    if config["websockets"]["enabled"] != serde_json::Value::Bool(true) {
        found.push((
            Code::ApprouterWebsocketsDisabled,
            "xs-app.json: \"websockets\": {\"enabled\": true} is missing, so the approuter answers every upgrade with 403".to_owned(),
        ));
    }
    let routes = config["routes"].as_array().cloned().unwrap_or_default();
    let matching = routes.iter().find(|r| {
        r["source"]
            .as_str()
            .and_then(|s| regex::Regex::new(s).ok())
            .is_some_and(|re| re.is_match(path))
    });
    let Some(route) = matching else {
        found.push((
            Code::ApprouterRouteMissing,
            format!("no route of xs-app.json has a `source` matching {path}"),
        ));
        return found;
    };
    if let Some(destination) = route["destination"].as_str()
        && !destination_defined(dir, destination, manifest_destinations)
    {
        found.push((
            Code::ApprouterDestinationMissing,
            format!(
                "the route for {path} sends to the destination {destination:?}, which neither default-env.json nor the manifest's `destinations` defines"
            ),
        ));
    }
    found
}

fn destination_defined(dir: &Path, name: &str, manifest_destinations: Option<&str>) -> bool {
    let names = |json: &serde_json::Value| -> Vec<String> {
        json.as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|d| d["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let from_file = std::fs::read_to_string(dir.join("default-env.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|env| names(&env["destinations"]))
        .unwrap_or_default();
    let from_manifest = manifest_destinations
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .map(|d| names(&d))
        .unwrap_or_default();
    from_file.iter().chain(&from_manifest).any(|n| n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(xs_app: &str, default_env: Option<&str>) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wscheck-xsapp-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("xs-app.json"), xs_app).unwrap();
        if let Some(env) = default_env {
            std::fs::write(dir.join("default-env.json"), env).unwrap();
        }
        dir
    }

    #[test]
    fn websockets_routes_and_destinations_are_checked() {
        let ok = folder(
            r#"{"websockets":{"enabled":true},"routes":[{"source":"^/ws(.*)$","destination":"backend"}]}"#,
            Some(r#"{"destinations":[{"name":"backend","url":"http://localhost:1"}]}"#),
        );
        assert!(check(&ok, "/ws", None).is_empty());
        let codes = |found: Vec<(Code, String)>| found.into_iter().map(|f| f.0).collect::<Vec<_>>();
        let off = folder(
            r#"{"routes":[{"source":"^/(.*)$","destination":"backend"}]}"#,
            None,
        );
        assert_eq!(
            codes(check(&off, "/ws", Some(r#"[{"name":"backend"}]"#))),
            [Code::ApprouterWebsocketsDisabled]
        );
        assert_eq!(
            codes(check(&off, "/ws", None)),
            [
                Code::ApprouterWebsocketsDisabled,
                Code::ApprouterDestinationMissing
            ]
        );
        let elsewhere = folder(
            r#"{"websockets":{"enabled":true},"routes":[{"source":"^/api/(.*)$","destination":"b"}]}"#,
            None,
        );
        assert_eq!(
            codes(check(&elsewhere, "/ws", None)),
            [Code::ApprouterRouteMissing]
        );
    }
}
