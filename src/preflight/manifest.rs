//! The app as Cloud Foundry will see it: `manifest.yml` (one app of it), or a `Procfile`'s
//! `web:` line, or a command given after `--`; what a Node or Python project would run is
//! named when no command is given, never guessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::Error;

/// CF's default for `timeout` (seconds to pass the health check).
pub const DEFAULT_TIMEOUT_S: u64 = 60;

/// CF's health check kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckType {
    Port,
    Process,
    Http,
    None,
}

impl HealthCheckType {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckType::Port => "port",
            HealthCheckType::Process => "process",
            HealthCheckType::Http => "http",
            HealthCheckType::None => "none",
        }
    }
}

/// The app to run, as the manifest (or the command line) describes it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AppManifest {
    /// The manifest file read, if any.
    pub file: Option<PathBuf>,
    pub name: String,
    pub command: String,
    /// Where the command came from: `manifest`, `argument` or `procfile`.
    pub command_source: &'static str,
    pub health_check_type: HealthCheckType,
    pub health_check_http_endpoint: String,
    pub timeout_s: u64,
    pub memory_mib: Option<u64>,
    pub instances: u32,
    /// Routes as written (`host` or `host/path`).
    pub routes: Vec<String>,
    /// The manifest's `env`; values are not reported (they may be secrets).
    #[serde(serialize_with = "names_only")]
    #[schemars(with = "Vec<String>")]
    pub env: BTreeMap<String, String>,
    /// The folder the app runs in (the manifest's `path`, relative to it).
    pub dir: PathBuf,
}

fn names_only<S: serde::Serializer>(
    env: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(env.keys())
}

/// Reads the app in `dir`: `manifest` (default `dir/manifest.yml`, if present), the app
/// named `app` in a multi-app manifest, and `command` (after `--`) over the manifest's.
pub fn load(
    dir: &Path,
    manifest: Option<&Path>,
    app: Option<&str>,
    command: Option<String>,
) -> Result<AppManifest, Error> {
    let file = manifest
        .map(Path::to_path_buf)
        .or_else(|| Some(dir.join("manifest.yml")).filter(|f| f.exists()));
    let mut parsed = match &file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::Setup(format!("{}: {e}", file.display())))?;
            parse(&text, app).map_err(|e| Error::Setup(format!("{}: {e}", file.display())))?
        }
        None => AppManifest::bare(dir),
    };
    parsed.file = file.clone();
    let base = file
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
    parsed.dir = match &parsed.dir {
        d if d.as_os_str().is_empty() => dir.to_path_buf(),
        d => base.join(d),
    };
    if let Some(command) = command {
        parsed.command = command;
        parsed.command_source = "argument";
    } else if parsed.command.is_empty() {
        parsed.command = procfile_web(&parsed.dir).ok_or_else(|| no_command(&parsed.dir))?;
        parsed.command_source = "procfile";
    }
    Ok(parsed)
}

impl AppManifest {
    fn bare(dir: &Path) -> Self {
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "app".to_owned());
        Self {
            file: None,
            name,
            command: String::new(),
            command_source: "manifest",
            health_check_type: HealthCheckType::Port,
            health_check_http_endpoint: "/".to_owned(),
            timeout_s: DEFAULT_TIMEOUT_S,
            memory_mib: None,
            instances: 1,
            routes: Vec::new(),
            env: BTreeMap::new(),
            dir: PathBuf::new(),
        }
    }
}

/// Parses a manifest's text; `app` picks one of several applications.
pub fn parse(text: &str, app: Option<&str>) -> Result<AppManifest, String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let apps = doc
        .get("applications")
        .and_then(|a| a.as_sequence())
        .ok_or("no `applications:` list")?;
    let names: Vec<&str> = apps
        .iter()
        .filter_map(|a| a.get("name").and_then(|n| n.as_str()))
        .collect();
    let entry = match app {
        Some(wanted) => apps
            .iter()
            .find(|a| a.get("name").and_then(|n| n.as_str()) == Some(wanted))
            .ok_or_else(|| format!("no app named {wanted:?} (apps: {})", names.join(", ")))?,
        None if apps.len() == 1 => &apps[0],
        None => {
            return Err(format!(
                "{} apps; pick one with --app NAME ({})",
                apps.len(),
                names.join(", ")
            ));
        }
    };
    app_entry(entry)
}

fn app_entry(entry: &serde_yaml_ng::Value) -> Result<AppManifest, String> {
    let text = |key: &str| entry.get(key).and_then(value_text);
    let mut app = AppManifest::bare(Path::new(""));
    app.name = text("name").ok_or("the app has no `name`")?;
    app.command = text("command").unwrap_or_default();
    app.command_source = "manifest";
    if let Some(kind) = text("health-check-type") {
        app.health_check_type = health_check_type(&kind)?;
    }
    if let Some(endpoint) = text("health-check-http-endpoint") {
        app.health_check_http_endpoint = endpoint;
    }
    if let Some(timeout) = text("timeout") {
        app.timeout_s = timeout
            .parse()
            .map_err(|_| format!("`timeout: {timeout}` is not a number of seconds"))?;
    }
    app.memory_mib = text("memory").map(|m| memory_mib(&m)).transpose()?;
    if let Some(instances) = text("instances") {
        app.instances = instances.parse().unwrap_or(1);
    }
    if let Some(routes) = entry.get("routes").and_then(|r| r.as_sequence()) {
        app.routes = routes
            .iter()
            .filter_map(|r| r.get("route").and_then(value_text))
            .collect();
    }
    if let Some(env) = entry.get("env").and_then(|e| e.as_mapping()) {
        for (name, value) in env {
            if let (Some(name), Some(value)) = (value_text(name), value_text(value)) {
                app.env.insert(name, value);
            }
        }
    }
    app.dir = text("path").map(PathBuf::from).unwrap_or_default();
    Ok(app)
}

/// A scalar as text (YAML numbers and booleans included).
fn value_text(value: &serde_yaml_ng::Value) -> Option<String> {
    match value {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn health_check_type(kind: &str) -> Result<HealthCheckType, String> {
    match kind {
        "port" => Ok(HealthCheckType::Port),
        "process" => Ok(HealthCheckType::Process),
        "http" => Ok(HealthCheckType::Http),
        // `none` is the old name of `process`; kept apart because it is the one the article
        // suggests, which hides exactly the failures a port check finds.
        "none" => Ok(HealthCheckType::None),
        other => Err(format!(
            "`health-check-type: {other}` is not port, process, http or none"
        )),
    }
}

/// CF memory sizes: `64M`, `1G`, `512MB`, `1024` (MiB).
fn memory_mib(text: &str) -> Result<u64, String> {
    let upper = text.trim().to_ascii_uppercase();
    let digits: String = upper.chars().take_while(char::is_ascii_digit).collect();
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`memory: {text}` is not a size such as 256M or 1G"))?;
    match upper[digits.len()..].trim() {
        "" | "M" | "MB" => Ok(number),
        "G" | "GB" => Ok(number * 1024),
        _ => Err(format!("`memory: {text}` is not a size such as 256M or 1G")),
    }
}

/// A `Procfile`'s `web:` command.
fn procfile_web(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Procfile")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("web:"))
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
}

/// No command anywhere: say how to give one, and what the project's own files would run.
fn no_command(dir: &Path) -> Error {
    let mut hint = String::new();
    if let Some(start) = std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|p| p["scripts"]["start"].as_str().map(str::to_owned))
    {
        hint =
            format!("; package.json's start script, which the Node buildpack runs, is `{start}`");
    }
    Error::Setup(format!(
        "no start command for the app in {}: set `command:` in manifest.yml, add a Procfile `web:` line, or give it after `--` (wscheck app DIR -- node server.js){hint}",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_gives_command_health_check_memory_routes_and_env() {
        let app = parse(
            "applications:\n- name: chat\n  command: exec node server.js\n  memory: 1G\n  timeout: 30\n  health-check-type: http\n  health-check-http-endpoint: /healthz\n  routes:\n  - route: chat.cfapps.eu10.hana.ondemand.com/ws\n  env:\n    TOKEN: s3cret\n    DEBUG: 1\n",
            None,
        )
        .unwrap();
        assert_eq!(app.name, "chat");
        assert_eq!(app.command, "exec node server.js");
        assert_eq!(app.memory_mib, Some(1024));
        assert_eq!(app.timeout_s, 30);
        assert_eq!(app.health_check_type, HealthCheckType::Http);
        assert_eq!(app.routes, ["chat.cfapps.eu10.hana.ondemand.com/ws"]);
        assert_eq!(app.env["DEBUG"], "1");
        let json = serde_json::to_value(&app).unwrap();
        assert_eq!(json["env"], serde_json::json!(["DEBUG", "TOKEN"]));
    }

    #[test]
    fn several_apps_need_a_name_and_bad_values_are_named() {
        let two = "applications:\n- name: a\n- name: b\n  memory: 64M\n";
        assert!(parse(two, None).unwrap_err().contains("--app NAME (a, b)"));
        assert_eq!(parse(two, Some("b")).unwrap().memory_mib, Some(64));
        assert!(parse(two, Some("c")).unwrap_err().contains("no app named"));
        let bad = "applications:\n- name: a\n  health-check-type: ping\n";
        assert!(parse(bad, None).unwrap_err().contains("ping"));
        assert!(memory_mib("lots").is_err());
    }
}
