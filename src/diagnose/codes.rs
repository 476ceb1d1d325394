//! The stable diagnosis codes: their snake_case names, what each means in one line and what
//! to do about it. README's troubleshooting section repeats these texts word for word (a
//! test keeps the two in step).

use schemars::JsonSchema;
use serde::Serialize;

/// Stable diagnosis codes (snake_case in every output format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    Ok,
    OkUnverifiedEcho,
    OkProtocol,
    DnsFailure,
    ConnectRefused,
    ConnectTimeout,
    /// A `*.apps.internal` route's port gets no answer: no network policy lets the traffic in.
    InternalRouteNoPolicy,
    TlsHandshakeFailed,
    TlsHandshakeTimeout,
    TlsCertUntrusted,
    TlsCertNameMismatch,
    TlsCertExpired,
    TlsToPlainPort,
    PlainToTlsPort,
    UpgradeHeaderStripped,
    NotAWebsocketEndpoint,
    RouteNotFound,
    InstanceNotFound,
    InvalidCfAppInstanceHeader,
    EmptyHost,
    NoAppInstances,
    AppUnreachable,
    ConnectionLimitReached,
    RouteServiceUnsupported,
    ApprouterWebsocketsDisabled,
    OriginRejected,
    AuthRequired,
    Forbidden,
    Redirected,
    PathNotFound,
    ClosedDuringHandshake,
    HandshakeTimeout,
    HandshakeInvalid,
    SubprotocolNotAccepted,
    NotHttp,
    UnexpectedStatus,
    EchoTimeout,
    EchoMismatch,
    ClosedDuringEcho,
    ProxyAuthRequired,
    ProxyUnreachable,
    ProxyRefused,
    ProxyTlsIntercepted,
    IdleTimeout,
    MessageTooLarge,
    PathMtuBlackHole,
    SocketioNamespaceRefused,
    SocketioTransportMissing,
    GraphqlRejected,
    ProtocolHandshakeFailed,
    SocketioPath,
    SocketioVersionMismatch,
    StompError,
    SockjsWebsocketDisabled,
    StickySessionRequired,
    AppBoundLoopback,
    AppWrongPort,
    WebsocketOnOtherPort,
    AppExited,
    HealthCheckFailed,
    HealthCheckSlow,
    HealthCheckNone,
    CommandWithoutExec,
    ShutdownSlow,
    IgnoresSigterm,
    MemoryOverLimit,
    ApprouterRouteMissing,
    ApprouterDestinationMissing,
}

impl Code {
    pub const ALL: [Code; 68] = [
        Code::Ok,
        Code::OkUnverifiedEcho,
        Code::OkProtocol,
        Code::DnsFailure,
        Code::ConnectRefused,
        Code::ConnectTimeout,
        Code::InternalRouteNoPolicy,
        Code::TlsHandshakeFailed,
        Code::TlsHandshakeTimeout,
        Code::TlsCertUntrusted,
        Code::TlsCertNameMismatch,
        Code::TlsCertExpired,
        Code::TlsToPlainPort,
        Code::PlainToTlsPort,
        Code::UpgradeHeaderStripped,
        Code::NotAWebsocketEndpoint,
        Code::RouteNotFound,
        Code::InstanceNotFound,
        Code::InvalidCfAppInstanceHeader,
        Code::EmptyHost,
        Code::NoAppInstances,
        Code::AppUnreachable,
        Code::ConnectionLimitReached,
        Code::RouteServiceUnsupported,
        Code::ApprouterWebsocketsDisabled,
        Code::OriginRejected,
        Code::AuthRequired,
        Code::Forbidden,
        Code::Redirected,
        Code::PathNotFound,
        Code::ClosedDuringHandshake,
        Code::HandshakeTimeout,
        Code::HandshakeInvalid,
        Code::SubprotocolNotAccepted,
        Code::NotHttp,
        Code::UnexpectedStatus,
        Code::EchoTimeout,
        Code::EchoMismatch,
        Code::ClosedDuringEcho,
        Code::ProxyAuthRequired,
        Code::ProxyUnreachable,
        Code::ProxyRefused,
        Code::ProxyTlsIntercepted,
        Code::IdleTimeout,
        Code::MessageTooLarge,
        Code::PathMtuBlackHole,
        Code::SocketioNamespaceRefused,
        Code::SocketioTransportMissing,
        Code::GraphqlRejected,
        Code::ProtocolHandshakeFailed,
        Code::SocketioPath,
        Code::SocketioVersionMismatch,
        Code::StompError,
        Code::SockjsWebsocketDisabled,
        Code::StickySessionRequired,
        Code::AppBoundLoopback,
        Code::AppWrongPort,
        Code::WebsocketOnOtherPort,
        Code::AppExited,
        Code::HealthCheckFailed,
        Code::HealthCheckSlow,
        Code::HealthCheckNone,
        Code::CommandWithoutExec,
        Code::ShutdownSlow,
        Code::IgnoresSigterm,
        Code::MemoryOverLimit,
        Code::ApprouterRouteMissing,
        Code::ApprouterDestinationMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::OkUnverifiedEcho => "ok_unverified_echo",
            Code::OkProtocol => "ok_protocol",
            Code::DnsFailure => "dns_failure",
            Code::ConnectRefused => "connect_refused",
            Code::ConnectTimeout => "connect_timeout",
            Code::InternalRouteNoPolicy => "internal_route_no_policy",
            Code::TlsHandshakeFailed => "tls_handshake_failed",
            Code::TlsHandshakeTimeout => "tls_handshake_timeout",
            Code::TlsCertUntrusted => "tls_cert_untrusted",
            Code::TlsCertNameMismatch => "tls_cert_name_mismatch",
            Code::TlsCertExpired => "tls_cert_expired",
            Code::TlsToPlainPort => "tls_to_plain_port",
            Code::PlainToTlsPort => "plain_to_tls_port",
            Code::UpgradeHeaderStripped => "upgrade_header_stripped",
            Code::NotAWebsocketEndpoint => "not_a_websocket_endpoint",
            Code::RouteNotFound => "route_not_found",
            Code::InstanceNotFound => "instance_not_found",
            Code::InvalidCfAppInstanceHeader => "invalid_cf_app_instance_header",
            Code::EmptyHost => "empty_host",
            Code::NoAppInstances => "no_app_instances",
            Code::AppUnreachable => "app_unreachable",
            Code::ConnectionLimitReached => "connection_limit_reached",
            Code::RouteServiceUnsupported => "route_service_unsupported",
            Code::ApprouterWebsocketsDisabled => "approuter_websockets_disabled",
            Code::OriginRejected => "origin_rejected",
            Code::AuthRequired => "auth_required",
            Code::Forbidden => "forbidden",
            Code::Redirected => "redirected",
            Code::PathNotFound => "path_not_found",
            Code::ClosedDuringHandshake => "closed_during_handshake",
            Code::HandshakeTimeout => "handshake_timeout",
            Code::HandshakeInvalid => "handshake_invalid",
            Code::SubprotocolNotAccepted => "subprotocol_not_accepted",
            Code::NotHttp => "not_http",
            Code::UnexpectedStatus => "unexpected_status",
            Code::EchoTimeout => "echo_timeout",
            Code::EchoMismatch => "echo_mismatch",
            Code::ClosedDuringEcho => "closed_during_echo",
            Code::ProxyAuthRequired => "proxy_auth_required",
            Code::ProxyUnreachable => "proxy_unreachable",
            Code::ProxyRefused => "proxy_refused",
            Code::ProxyTlsIntercepted => "proxy_tls_intercepted",
            Code::IdleTimeout => "idle_timeout",
            Code::MessageTooLarge => "message_too_large",
            Code::PathMtuBlackHole => "path_mtu_black_hole",
            Code::SocketioNamespaceRefused => "socketio_namespace_refused",
            Code::SocketioTransportMissing => "socketio_transport_missing",
            Code::GraphqlRejected => "graphql_rejected",
            Code::ProtocolHandshakeFailed => "protocol_handshake_failed",
            Code::SocketioPath => "socketio_path",
            Code::SocketioVersionMismatch => "socketio_version_mismatch",
            Code::StompError => "stomp_error",
            Code::SockjsWebsocketDisabled => "sockjs_websocket_disabled",
            Code::StickySessionRequired => "sticky_session_required",
            Code::AppBoundLoopback => "app_bound_loopback",
            Code::AppWrongPort => "app_wrong_port",
            Code::WebsocketOnOtherPort => "websocket_on_other_port",
            Code::AppExited => "app_exited",
            Code::HealthCheckFailed => "health_check_failed",
            Code::HealthCheckSlow => "health_check_slow",
            Code::HealthCheckNone => "health_check_none",
            Code::CommandWithoutExec => "command_without_exec",
            Code::ShutdownSlow => "shutdown_slow",
            Code::IgnoresSigterm => "ignores_sigterm",
            Code::MemoryOverLimit => "memory_over_limit",
            Code::ApprouterRouteMissing => "approuter_route_missing",
            Code::ApprouterDestinationMissing => "approuter_destination_missing",
        }
    }

    pub fn is_ok(self) -> bool {
        matches!(
            self,
            Code::Ok | Code::OkUnverifiedEcho | Code::OkProtocol | Code::SocketioPath
        )
    }

    /// What happened, in one line.
    pub fn summary(self) -> &'static str {
        match self {
            Code::Ok => "The WebSocket opened and the echo came back.",
            Code::OkProtocol => {
                "The WebSocket opened and the application protocol's opening completed (an echo is not expected)."
            }
            Code::OkUnverifiedEcho => {
                "The WebSocket opened; the peer does not echo (it said something else, or nothing), so the message path is not verified."
            }
            Code::DnsFailure => "The host name does not resolve.",
            Code::ConnectRefused => "Nothing accepts TCP connections on this port.",
            Code::ConnectTimeout => {
                "TCP connections to this port get no answer (filtered or black-holed)."
            }
            Code::InternalRouteNoPolicy => {
                "Nothing answers on this port of an internal route (`*.apps.internal`): Cloud Foundry drops container-to-container traffic that no network policy allows."
            }
            Code::TlsHandshakeFailed => "The TLS handshake was answered, and it failed.",
            Code::TlsHandshakeTimeout => {
                "The port accepted the TCP connection, then nothing answered the TLS handshake."
            }
            Code::TlsCertUntrusted => "The server's certificate is not issued by a trusted CA.",
            Code::TlsCertNameMismatch => {
                "The server's certificate is not valid for this host name."
            }
            Code::TlsCertExpired => "The server's certificate is expired (or not yet valid).",
            Code::TlsToPlainPort => "wss:// was sent to a port that speaks plain HTTP.",
            Code::PlainToTlsPort => "ws:// was sent to a port that speaks TLS.",
            Code::UpgradeHeaderStripped => {
                "The app answered 426 Upgrade Required: the request reached it without its Upgrade/Connection headers."
            }
            Code::NotAWebsocketEndpoint => {
                "The server answered with a normal HTTP response instead of 101 Switching Protocols."
            }
            Code::RouteNotFound => {
                "The Cloud Foundry router knows no app for this host (404 unknown_route)."
            }
            Code::InstanceNotFound => {
                "The Cloud Foundry router has no app instance matching X-Cf-App-Instance (400 unknown_route)."
            }
            Code::InvalidCfAppInstanceHeader => {
                "The Cloud Foundry router rejected a malformed X-Cf-App-Instance header (400)."
            }
            Code::EmptyHost => {
                "The Cloud Foundry router got a request without a Host header (400)."
            }
            Code::NoAppInstances => {
                "The route is mapped, but the app has no running instance (503 no_endpoints)."
            }
            Code::AppUnreachable => {
                "The router could not reach the app on its port (502 endpoint_failure)."
            }
            Code::ConnectionLimitReached => "The connection limit was reached (503).",
            Code::RouteServiceUnsupported => {
                "The route is bound to a route service; CF does not carry WebSockets through route services."
            }
            Code::ApprouterWebsocketsDisabled => {
                "The SAP Application Router refused the upgrade: WebSockets are disabled in xs-app.json."
            }
            Code::OriginRejected => {
                "The server refused the handshake because of its Origin header."
            }
            Code::AuthRequired => {
                "The server wants authentication first (401, or a redirect to a login page)."
            }
            Code::Forbidden => "The server refused the handshake (403).",
            Code::Redirected => {
                "The server answered the handshake with a redirect; WebSocket clients do not follow redirects."
            }
            Code::PathNotFound => {
                "The server has nothing at this path (404 from the app or a proxy, not from the CF router)."
            }
            Code::ClosedDuringHandshake => {
                "The connection was closed before the server answered the upgrade."
            }
            Code::HandshakeTimeout => {
                "The server accepted the connection but never answered the upgrade request."
            }
            Code::HandshakeInvalid => {
                "The server answered 101 but broke the WebSocket handshake rules."
            }
            Code::SubprotocolNotAccepted => {
                "The server accepted the WebSocket but picked none of the offered subprotocols; browsers then fail the connection."
            }
            Code::NotHttp => "The port answered with something that is not HTTP.",
            Code::UnexpectedStatus => {
                "The server refused the handshake with an unexpected HTTP status."
            }
            Code::EchoTimeout => "The WebSocket opened, but the echo never came back.",
            Code::EchoMismatch => {
                "The WebSocket opened, but an echo server sent back something other than the message sent."
            }
            Code::ClosedDuringEcho => {
                "The WebSocket opened, then was closed before the echo came back."
            }
            Code::ProxyAuthRequired => {
                "The HTTP proxy wants credentials before it opens a tunnel (407)."
            }
            Code::ProxyUnreachable => {
                "The HTTP proxy cannot be reached: its name does not resolve or nothing accepts connections there."
            }
            Code::ProxyRefused => "The HTTP proxy refused (or broke off) the tunnel to the route.",
            Code::ProxyTlsIntercepted => {
                "Through the proxy, the route shows a certificate from an unexpected issuer: the proxy intercepts TLS."
            }
            Code::IdleTimeout => {
                "An idle WebSocket was cut by something on the way (a load balancer, proxy or router idle timeout)."
            }
            Code::MessageTooLarge => {
                "Messages above a size limit do not come back: the connection is closed or reset instead."
            }
            Code::PathMtuBlackHole => {
                "Messages above a size get no answer at all (no close, no reset) while smaller ones pass: large packets are lost on the way, a path MTU black hole (ICMP \"fragmentation needed\" filtered)."
            }
            Code::SocketioNamespaceRefused => {
                "The socket.io server refused to connect the namespace (a `44` packet): its middleware or namespace rules said no."
            }
            Code::GraphqlRejected => {
                "The GraphQL server refused the connection: a close with a graphql-transport-ws code, or a connection_error."
            }
            Code::SocketioTransportMissing => {
                "The socket.io server answered 400 Transport unknown: the URL lacks transport=websocket."
            }
            Code::ProtocolHandshakeFailed => {
                "The WebSocket opened, but the application protocol's opening did not complete."
            }
            Code::SocketioPath => {
                "The app is a socket.io server: the route's root refuses a WebSocket, and /socket.io/ completes socket.io's handshake."
            }
            Code::SocketioVersionMismatch => {
                "The socket.io client and server speak different Engine.IO versions (EIO 3 is socket.io 2.x, EIO 4 is socket.io 3 and 4)."
            }
            Code::StompError => {
                "The STOMP broker answered CONNECT with an ERROR frame (credentials, virtual host or protocol version)."
            }
            Code::SockjsWebsocketDisabled => {
                "The SockJS server has its websocket transport turned off (/info says websocket: false): clients fall back to HTTP streaming and polling."
            }
            Code::StickySessionRequired => {
                "Long-polling sessions break across the app's instances: a follow-up request of a session reached an instance that does not know it."
            }
            Code::AppBoundLoopback => {
                "The app listens on 127.0.0.1 (loopback) only: CF's health check and gorouter reach an instance on its container address, so it is never healthy."
            }
            Code::AppWrongPort => {
                "The app listens, but not on $PORT: CF's health check and gorouter only use $PORT."
            }
            Code::WebsocketOnOtherPort => {
                "The WebSocket answers on a second port of the app, not on $PORT: CF routes only $PORT, so the route's WebSocket fails."
            }
            Code::AppExited => {
                "The app exited while starting: CF would restart it and report the instance as crashed."
            }
            Code::HealthCheckFailed => {
                "The app did not pass Cloud Foundry's health check within the manifest's timeout: CF would stop it (Instance never healthy)."
            }
            Code::HealthCheckSlow => {
                "The app passed its health check, but took more than half of the manifest's timeout: a slower start on CF fails."
            }
            Code::HealthCheckNone => {
                "The manifest sets `health-check-type: none`: CF checks nothing, which hides an app that listens on the wrong port or on 127.0.0.1."
            }
            Code::CommandWithoutExec => {
                "The start command leaves bash in front of the app: SIGTERM at shutdown goes to bash, not to the app, which is then killed after 10 s."
            }
            Code::ShutdownSlow => {
                "The app took several seconds to exit after SIGTERM: CF kills it 10 s after SIGTERM."
            }
            Code::IgnoresSigterm => {
                "The app did not exit within 10 s of SIGTERM and was killed: its clients saw resets instead of a close."
            }
            Code::MemoryOverLimit => {
                "The app's processes used more memory than the manifest's `memory:`: CF would kill the instance (out of memory)."
            }
            Code::ApprouterRouteMissing => {
                "No route of the approuter's xs-app.json matches the WebSocket path: it answers the upgrade with 404."
            }
            Code::ApprouterDestinationMissing => {
                "The approuter route for the WebSocket path names a destination that is not defined."
            }
        }
    }

    /// What to do.
    pub fn fix(self) -> &'static str {
        match self {
            Code::Ok => "Nothing to fix.",
            Code::OkProtocol => "Nothing to fix.",
            Code::OkUnverifiedEcho => {
                "Nothing to fix if your app does not echo. Push the bundled wscheck-server to the same domain to verify the full message path."
            }
            Code::DnsFailure => {
                "Check the route's spelling and domain (`cf routes`, `cf app APP`); on SAP BTP the domain looks like cfapps.<region>.hana.ondemand.com."
            }
            Code::ConnectRefused => {
                "Use the port-less URL: CF routes take only 443 (wss://) and 80 (ws://); the app's $PORT (8080) is never reachable from outside."
            }
            Code::ConnectTimeout => {
                "Use wss://<route> without a port. If that times out too, a firewall or proxy blocks the way: try from another network or set --connect-timeout higher."
            }
            Code::InternalRouteNoPolicy => {
                "Allow the app that connects to reach the app behind the route: `cf add-network-policy SOURCE_APP DEST_APP --port 8080 --protocol tcp` (the port DEST_APP listens on; `cf network-policies` lists them). Dial internal routes on that port with ws://, from inside the foundation (cf ssh, cf run-task)."
            }
            Code::TlsHandshakeFailed => {
                "Check that this port speaks TLS and that the client offers TLS 1.2 or 1.3; see the detail for the handshake error."
            }
            Code::TlsHandshakeTimeout => {
                "Nothing on this port speaks TLS (it may wait for plain HTTP, or be a black hole behind a load balancer): use wss:// without a port, or ws:// if this port is plain."
            }
            Code::TlsCertUntrusted => {
                "If a corporate proxy intercepts TLS, the issuer names it: trust its CA (--cacert) or go around it. Otherwise the route's certificate chain is incomplete or self-signed."
            }
            Code::TlsCertNameMismatch => {
                "Use the route's exact host name (a custom domain needs its own certificate on the router or load balancer)."
            }
            Code::TlsCertExpired => {
                "The certificate on the router or load balancer must be renewed (or the client's clock is wrong)."
            }
            Code::TlsToPlainPort => {
                "Use ws:// for this port, or better wss:// without a port: on CF, TLS ends at the router on 443."
            }
            Code::PlainToTlsPort => "Use wss:// for this port (TLS), or wss:// without a port.",
            Code::UpgradeHeaderStripped => {
                "A proxy between client and app dropped the hop-by-hop Upgrade/Connection headers (nginx needs proxy_http_version 1.1 and proxy_set_header Upgrade/Connection), or the client does not speak WebSocket (a raw TCP device needs a TCP route, which SAP BTP does not offer)."
            }
            Code::NotAWebsocketEndpoint => {
                "Point the client at the path where the app accepts WebSockets, and make the WebSocket server share the HTTP server on $PORT."
            }
            Code::RouteNotFound => {
                "Map the route to the app (`cf map-route`), check the host and path, and start the app: a stopped app's route is pruned."
            }
            Code::InstanceNotFound => {
                "Check --instance / X-Cf-App-Instance: APP_GUID must be `cf app APP --guid` and INDEX a running instance (`cf app APP` lists them, from 0)."
            }
            Code::InvalidCfAppInstanceHeader => {
                "Send X-Cf-App-Instance as APP_GUID:INDEX, e.g. 2d8b1ba5-4b6e-4b6e-9f1c-0a1b2c3d4e5f:0 (`cf app APP --guid`)."
            }
            Code::EmptyHost => {
                "Send a Host header with the route's name; HTTP/1.0 clients and some devices omit it."
            }
            Code::NoAppInstances => {
                "Start the app or scale it up (`cf start`, `cf scale -i`); `cf app APP` shows why instances are down."
            }
            Code::AppUnreachable => {
                "The app must listen on $PORT (8080) bound to 0.0.0.0, not 127.0.0.1 or another port; `cf logs APP --recent` shows crashes."
            }
            Code::ConnectionLimitReached => {
                "Too many connections to this app: scale out (`cf scale -i`) or raise the limit (gorouter: router.backends.max_conns)."
            }
            Code::RouteServiceUnsupported => {
                "Unbind the route service from this route, or serve WebSockets on a route without one."
            }
            Code::ApprouterWebsocketsDisabled => {
                "Set \"websockets\": {\"enabled\": true} in the approuter's xs-app.json and push it again."
            }
            Code::OriginRejected => {
                "Send an Origin the server allows (--origin), or allow this origin on the server (approuter: WS_ALLOWED_ORIGINS; Flask-SocketIO and python-socketio: cors_allowed_origins)."
            }
            Code::AuthRequired => {
                "Log in first and pass the session or token (-H 'Cookie: JSESSIONID=...' or -H 'Authorization: Bearer ...'); the approuter needs its session cookie."
            }
            Code::Forbidden => {
                "Check the user's roles and scopes, and any IP allow-list in front of the app."
            }
            Code::Redirected => {
                "Use the URL the redirect points to (see Location); a redirect to https means use wss://."
            }
            Code::PathNotFound => {
                "Check the path: the app (or the approuter's xs-app.json routes) has nothing there."
            }
            Code::ClosedDuringHandshake => {
                "Something between client and app dropped the connection: check the app's logs and any proxy on the way."
            }
            Code::HandshakeTimeout => {
                "The app (or a proxy) accepted TCP but did not answer: it may not be an HTTP server, or it is stuck; check its logs."
            }
            Code::HandshakeInvalid => {
                "Fix the server's WebSocket implementation (see the detail); a proxy that rewrites the 101 answer can also cause this."
            }
            Code::SubprotocolNotAccepted => {
                "Make the server pick one of the offered subprotocols, or do not offer any."
            }
            Code::NotHttp => {
                "This port serves another protocol: use the route's port-less wss:// URL."
            }
            Code::UnexpectedStatus => {
                "See the status and body in the detail; an answer without X-Cf-Routererror came from the app or a proxy, not from the CF router."
            }
            Code::EchoTimeout => {
                "The app accepted the WebSocket but did not answer: check its message handler; a proxy that buffers frames can also cause this."
            }
            Code::EchoMismatch => {
                "This peer is known to echo (wscheck-server or the article's server), so something on the way alters messages: check proxies that rewrite WebSocket frames."
            }
            Code::ClosedDuringEcho => {
                "See the close code and reason in the detail: they say who closed and why (1008 a policy such as an auth or session check, 1009 a message too big, 1011 a server error, 4xxx the app's own)."
            }
            Code::ProxyAuthRequired => {
                "Give the proxy's credentials: -x http://user:pass@proxy:port (or in https_proxy); ask IT which account the proxy accepts."
            }
            Code::ProxyUnreachable => {
                "Check the proxy setting named in the detail (-x, or https_proxy / http_proxy / ws_proxy in the environment): fix its host and port, unset it, or add the route to no_proxy."
            }
            Code::ProxyRefused => {
                "Many corporate proxies allow CONNECT only to port 443: use wss:// without a port, or ask IT to allow the route; the detail has the proxy's answer."
            }
            Code::ProxyTlsIntercepted => {
                "The proxy re-signs TLS with its own CA: trust that CA (--cacert), or ask IT to exempt the route from TLS inspection, which often breaks WebSockets."
            }
            Code::IdleTimeout => {
                "Send a ping (or any message) more often than the cut-off, in the client or the app; the bundled server pings every 25 s for this reason."
            }
            Code::PathMtuBlackHole => {
                "Let ICMP \"fragmentation needed\" (IPv4 type 3 code 4) and ICMPv6 \"packet too big\" through the firewalls between client and route, or clamp the TCP MSS to the path MTU on the link with the small MTU (a VPN or tunnel: iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu); until then keep messages below the largest size that passed."
            }
            Code::MessageTooLarge => {
                "Keep messages below the largest size that passed, or raise the limit where it is set (the app's WebSocket library, a proxy's buffer, the approuter)."
            }
            Code::SocketioNamespaceRefused => {
                "See the message in the detail: an auth middleware (`io.use(...)`) wants credentials (pass the token the client sends, e.g. -H 'Authorization: Bearer ...' or a cookie), or the namespace does not exist on the server."
            }
            Code::GraphqlRejected => {
                "See the close code in the detail: 4403 means the server's onConnect refused (pass the credentials it checks, e.g. -H 'Authorization: Bearer ...'), 4406 the subprotocol (offer graphql-transport-ws with --subprotocol), 4401/4400 a client that does not speak the protocol the server expects."
            }
            Code::SocketioTransportMissing => {
                "Connect WebSocket clients to /socket.io/?EIO=4&transport=websocket (socket.io clients do this themselves; set `transports: ['websocket']` to skip long-polling)."
            }
            Code::SocketioPath => {
                "socket.io clients find /socket.io/ themselves (io('https://ROUTE')); a plain WebSocket client must connect to wss://ROUTE/socket.io/?EIO=4&transport=websocket, or to the `path` set in `new Server(http, { path })`."
            }
            Code::SocketioVersionMismatch => {
                "Use matching major versions: socket.io 4 on both sides, or, while socket.io 2.x clients remain, `new Server(http, { allowEIO3: true })` on the v4 server (python-socketio 5 / Flask-SocketIO 5 speak EIO 4 only)."
            }
            Code::StompError => {
                "See the message in the detail: an access refusal wants the broker's credentials (--stomp-header login:USER --stomp-header passcode:SECRET), a virtual host denial the right vhost in the host header (RabbitMQ: --stomp-header host:/); Spring's broker relay sends its own systemLogin and virtualHost."
            }
            Code::SockjsWebsocketDisabled => {
                "Turn the transport on: sockjs-node `sockjs.createServer({ websocket: true })` (its default), Spring `.withSockJS().setWebSocketEnabled(true)`; gorouter carries WebSockets, and the HTTP fallback needs sticky sessions once the app has several instances."
            }
            Code::StickySessionRequired => {
                "Keep a session on one instance: have the app set a JSESSIONID cookie (socket.io `new Server(http, { cookie: { name: 'JSESSIONID' } })`), so gorouter adds __VCAP_ID__ and sends the session's requests to its instance; or skip long-polling in the client (`io(url, { transports: ['websocket'] })`)."
            }
            Code::ProtocolHandshakeFailed => {
                "The detail says where the opening stopped; check that the client speaks the server's protocol and version (socket.io v2 clients need `allowEIO3: true` on a v4 server)."
            }
            Code::AppBoundLoopback => {
                "Bind to 0.0.0.0 and $PORT: Flask `app.run(host='0.0.0.0', port=int(os.environ['PORT']))`, Express `app.listen(process.env.PORT)` with no host, Spring `server.address` unset, uvicorn `--host 0.0.0.0 --port $PORT`."
            }
            Code::AppWrongPort => {
                "Read the port from the PORT environment variable instead of a fixed one: Node `process.env.PORT`, Python `int(os.environ['PORT'])`, Spring `server.port=${PORT}`, Go `os.Getenv(\"PORT\")`."
            }
            Code::WebsocketOnOtherPort => {
                "Serve the WebSocket from the HTTP server on $PORT: ws `new WebSocketServer({ server })`, socket.io `new Server(httpServer)`, Flask-Sock or Flask-SocketIO on the Flask app, Spring's WebSocket on the same server."
            }
            Code::AppExited => {
                "See its last lines in the report: EADDRINUSE means two servers want $PORT (attach the WebSocket server to the HTTP server), ModuleNotFoundError / Cannot find module a missing dependency (requirements.txt, package.json)."
            }
            Code::HealthCheckFailed => {
                "For `port`: listen on 0.0.0.0:$PORT; for `http`: answer the health-check-http-endpoint with 200 within 1 s; raise `timeout:` only if the app really needs longer to start."
            }
            Code::HealthCheckSlow => {
                "Start faster (defer warm-up work until after listening), or raise `timeout:` in the manifest."
            }
            Code::HealthCheckNone => {
                "Use `health-check-type: port` (the default) or `http` with `health-check-http-endpoint`, so that CF notices an app that does not listen on $PORT."
            }
            Code::CommandWithoutExec => {
                "Start the app with `exec` in `command:` (e.g. `cd app && exec node server.js`), so that it gets SIGTERM and can close its WebSockets with 1001."
            }
            Code::ShutdownSlow => {
                "On SIGTERM, close the WebSockets (1001 going away) and the server at once; do not wait for clients to leave."
            }
            Code::IgnoresSigterm => {
                "Handle SIGTERM: close the WebSockets with 1001 and exit (Node `process.on('SIGTERM', ...)`, Python `signal.signal(signal.SIGTERM, ...)`, Spring graceful shutdown)."
            }
            Code::MemoryOverLimit => {
                "Raise `memory:` in the manifest, or lower the app's use (Node `--max-old-space-size`, the JVM's memory calculator settings)."
            }
            Code::ApprouterRouteMissing => {
                "Add a route whose `source` matches the WebSocket path (e.g. \"^/ws(.*)$\") with the backend's destination."
            }
            Code::ApprouterDestinationMissing => {
                "Define the destination (name and url) in default-env.json for local runs and in the `destinations` env or destination service on CF."
            }
        }
    }
}
