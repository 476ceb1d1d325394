//! The introspection document: what reached the app (request line, headers as received,
//! peer, port) and which instance of which app answered.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the process learned from Cloud Foundry's environment at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    /// `PORT`, the container port CF asked the app to listen on.
    pub port: Option<String>,
    /// `CF_INSTANCE_INDEX`.
    pub instance_index: Option<String>,
    /// `CF_INSTANCE_GUID`.
    pub instance_guid: Option<String>,
    /// `application_name` from `VCAP_APPLICATION`.
    pub application_name: Option<String>,
    /// `application_uris` (or `uris`) from `VCAP_APPLICATION`.
    #[serde(default)]
    pub application_uris: Vec<String>,
}

impl Environment {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the environment from any lookup (unit-testable without touching the process).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let vcap: serde_json::Value = lookup("VCAP_APPLICATION")
            .and_then(|raw| serde_json::from_str(&raw).ok())
            .unwrap_or_default();
        let uris = ["application_uris", "uris"]
            .iter()
            .find_map(|key| vcap.get(key).and_then(|v| v.as_array()))
            .map(|list| {
                list.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            port: non_empty("PORT"),
            instance_index: non_empty("CF_INSTANCE_INDEX"),
            instance_guid: non_empty("CF_INSTANCE_GUID"),
            application_name: ["application_name", "name"]
                .iter()
                .find_map(|key| vcap.get(key).and_then(|v| v.as_str()))
                .map(str::to_owned),
            application_uris: uris,
        }
    }
}

/// One request header exactly as it arrived (name case and order kept, duplicates kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// The request that reached the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestInfo {
    /// The request line, e.g. `GET /.wscheck/ws HTTP/1.1`.
    pub line: String,
    pub method: String,
    pub target: String,
    pub headers: Vec<Header>,
}

impl RequestInfo {
    /// First value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}

/// The document served at `/.wscheck/info` and sent first on `/.wscheck/ws`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Info {
    /// Always `wscheck-server`: lets a client tell this document from other JSON.
    pub server: String,
    pub version: String,
    pub uptime_ms: u64,
    pub request: RequestInfo,
    /// The TCP peer as the app saw it (the router, when there is one).
    pub peer: String,
    /// The port the connection arrived on.
    pub listen_port: u16,
    pub environment: Environment,
}

/// Value of `Info::server`.
pub const SERVER_NAME: &str = "wscheck-server";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cf_environment() {
        let env = Environment::from_lookup(|name| match name {
            "PORT" => Some("8080".into()),
            "CF_INSTANCE_INDEX" => Some("2".into()),
            "CF_INSTANCE_GUID" => Some("f0e1".into()),
            "VCAP_APPLICATION" => Some(
                r#"{"application_name":"echo","application_uris":["echo.cfapps.example.com"]}"#
                    .into(),
            ),
            _ => None,
        });
        assert_eq!(env.port.as_deref(), Some("8080"));
        assert_eq!(env.instance_index.as_deref(), Some("2"));
        assert_eq!(env.instance_guid.as_deref(), Some("f0e1"));
        assert_eq!(env.application_name.as_deref(), Some("echo"));
        assert_eq!(env.application_uris, vec!["echo.cfapps.example.com"]);
    }

    #[test]
    fn tolerates_broken_vcap_application() {
        let env = Environment::from_lookup(|name| {
            (name == "VCAP_APPLICATION").then(|| "{not json".to_owned())
        });
        assert_eq!(env, Environment::default());
    }
}
