//! What a client can see of this server on the wire: its greeting and echo prefix (the
//! article's protocol), the header that marks its answers, its paths and version.

/// What the server sends first on every WebSocket, as the article's `server.js` does.
pub const GREETING: &str = "Hi, this is the Echo-Server";
/// Prefix of every echoed text message, as in the article's `server.js`.
pub const ECHO_PREFIX: &str = "Echo: ";
/// Response header that tells the prober it reached this app and not something in between.
pub const SERVER_HEADER: &str = "X-Wscheck-Server";
/// Plain HTTP introspection endpoint.
pub const INFO_PATH: &str = "/.wscheck/info";
/// WebSocket path that first sends the introspection JSON of its own upgrade request.
pub const INFO_WS_PATH: &str = "/.wscheck/ws";
/// Health check endpoint for `health-check-type: http`.
pub const HEALTH_PATH: &str = "/healthz";
/// This server's version, sent in `X-Wscheck-Server` and in the introspection JSON.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
