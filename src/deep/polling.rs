//! The long-polling check (`--polling`, or `--connections N` on a socket.io URL): Engine.IO
//! sessions opened over HTTP long-polling as a socket.io client without `transports:
//! ['websocket']` does, each request on a connection of its own (as a browser's may be),
//! cookies carried as a browser carries them. A follow-up that reaches an instance which
//! does not know the session (400 "Session ID unknown") means the route needs sticky
//! sessions.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;

use crate::plan::{Candidate, Plan};
use crate::probe::ProbeResult;
use crate::probe::http::{self, Request, set_cookies};
use crate::probe::socketio::asked_eio;
use crate::probe::tls::TlsSetup;

/// Sessions tried when `--connections` does not say: enough to meet every instance of a
/// small app under round robin.
pub const DEFAULT_SESSIONS: u32 = 6;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PollingResult {
    /// The polling URL's path (`/socket.io/?EIO=4&transport=polling`).
    pub path: String,
    pub sessions: u32,
    /// Sessions whose handshake, connect (POST) and first poll (GET) all succeeded.
    pub completed: u32,
    /// Sessions a follow-up request did not find ("Session ID unknown").
    pub lost: u32,
    /// Cookies the app (or the router) set on the handshake, by name.
    pub cookies: Vec<String>,
    /// The first failure that was not a lost session, if any.
    pub error: Option<String>,
}

/// What one session's requests got.
enum Session {
    Completed,
    Lost,
    Failed(String),
}

/// The Engine.IO base of a URL path: its own when it is socket.io's, else `/socket.io/`.
fn base(path: &str) -> &str {
    let bare = path.split('?').next().unwrap_or_default();
    if bare.contains("/socket.io/") {
        bare
    } else {
        "/socket.io/"
    }
}

/// Runs `sessions` polling sessions over `candidate`, one after another.
pub async fn run(
    plan: &Plan,
    tls: &TlsSetup,
    candidate: &Candidate,
    sessions: u32,
) -> PollingResult {
    let eio = asked_eio(&plan.target.path).unwrap_or_else(|| "EIO4".to_owned());
    let version = eio.trim_start_matches("EIO");
    let path = format!(
        "{}?EIO={version}&transport=polling",
        base(&plan.target.path)
    );
    let mut polled = PollingResult {
        path: path.clone(),
        sessions,
        completed: 0,
        lost: 0,
        cookies: Vec::new(),
        error: None,
    };
    for _ in 0..sessions {
        let deadline = Instant::now() + plan.timeout;
        match session(plan, tls, candidate, &path, &mut polled.cookies, deadline).await {
            Session::Completed => polled.completed += 1,
            Session::Lost => polled.lost += 1,
            Session::Failed(why) => {
                polled.error.get_or_insert(why);
            }
        }
    }
    polled
}

/// One session: the handshake, the namespace's connect (POST `40`), the first poll (GET),
/// each on a new connection carrying the cookies set so far.
async fn session(
    plan: &Plan,
    tls: &TlsSetup,
    candidate: &Candidate,
    path: &str,
    cookie_names: &mut Vec<String>,
    deadline: Instant,
) -> Session {
    let mut scratch = ProbeResult::new(candidate);
    let handshake = match exchange(
        plan,
        tls,
        candidate,
        Request::get(path),
        &mut scratch,
        deadline,
    )
    .await
    {
        Ok(response) if response.status == 200 => response,
        Ok(response) => {
            return Session::Failed(format!(
                "handshake: HTTP {} {}",
                response.status,
                response.excerpt()
            ));
        }
        Err(why) => return Session::Failed(format!("handshake: {why}")),
    };
    let cookies = set_cookies(&handshake);
    for (name, _) in &cookies {
        if !cookie_names.contains(name) {
            cookie_names.push(name.clone());
        }
    }
    let Some(sid) = sid_of(&handshake.body) else {
        return Session::Failed(format!("handshake: no sid in {:?}", handshake.excerpt()));
    };
    let follow = format!("{path}&sid={sid}");
    let connect = if path.contains("EIO=3") { "2:40" } else { "40" };
    let requests = [
        Request {
            method: "POST",
            path: &follow,
            body: connect,
            cookies: &cookies,
        },
        Request {
            method: "GET",
            path: &follow,
            body: "",
            cookies: &cookies,
        },
    ];
    for request in requests {
        match exchange(plan, tls, candidate, request, &mut scratch, deadline).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) if r.body.to_ascii_lowercase().contains("session id unknown") => {
                return Session::Lost;
            }
            Ok(r) => return Session::Failed(format!("HTTP {} {}", r.status, r.excerpt())),
            Err(why) => return Session::Failed(why),
        }
    }
    Session::Completed
}

/// One request on a connection of its own.
async fn exchange(
    plan: &Plan,
    tls: &TlsSetup,
    candidate: &Candidate,
    request: Request<'_>,
    scratch: &mut ProbeResult,
    deadline: Instant,
) -> Result<http::HttpResponse, String> {
    match http::send(plan, tls, candidate, &request, scratch, deadline).await {
        Some(Ok(response)) => Ok(response),
        Some(Err(failure)) => Err(failure.message),
        None => Err(scratch
            .failure
            .as_ref()
            .map_or_else(|| "could not connect".to_owned(), |f| f.message.clone())),
    }
}

/// The sid of an Engine.IO open packet in a polling payload (`0{"sid":...}`, EIO3's
/// `96:0{...}` as well).
fn sid_of(payload: &str) -> Option<String> {
    let start = payload.find("0{")? + 1;
    let json = &payload[start..];
    let end = json.find('\u{1e}').unwrap_or(json.len());
    let open: serde_json::Value = serde_json::Deserializer::from_str(&json[..end])
        .into_iter()
        .next()?
        .ok()?;
    open.get("sid")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sid_is_read_from_either_engine_io_version() {
        let v4 = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(sid_of(v4).as_deref(), Some("lv_VI97HAXpY6yYWAAAC"));
        let v3 = r#"96:0{"sid":"a2qtq8bw9tPDnWSOAAAB","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}2:40"#;
        assert_eq!(sid_of(v3).as_deref(), Some("a2qtq8bw9tPDnWSOAAAB"));
        assert_eq!(sid_of("Not found"), None);
        assert_eq!(base("/chat/socket.io/?EIO=4"), "/chat/socket.io/");
        assert_eq!(base("/"), "/socket.io/");
    }
}
