//! Which app stack answered, as far as the answer shows it (`X-Powered-By`, `Server`, a
//! framework's own error body), and that stack's way to serve a WebSocket on `$PORT`.

use super::codes::Code;
use crate::probe::upgrade::HttpResponse;

/// A stack recognised in an answer: its name, and how to fix the code with it.
struct Stack {
    name: &'static str,
    fix: &'static str,
}

const EXPRESS: Stack = Stack {
    name: "Express (Node)",
    fix: "attach the WebSocket server to the HTTP server Express listens with, on the same port: `const server = app.listen(process.env.PORT); new WebSocketServer({ server, path: '/ws' })` (ws) or `new Server(server)` (socket.io); never `new WebSocketServer({ port })`",
};
const FLASK: Stack = Stack {
    name: "Flask (Werkzeug)",
    fix: "serve the WebSocket from the same app on $PORT: Flask-Sock (`sock = Sock(app)`, `@sock.route('/ws')`) or Flask-SocketIO (`socketio.run(app, host='0.0.0.0', port=int(os.environ['PORT']))`)",
};
const SOCKET_IO: Stack = Stack {
    name: "socket.io",
    fix: "this is a socket.io server: use a socket.io client, or probe its WebSocket transport at /socket.io/?EIO=4&transport=websocket (the path the server's `path` option sets)",
};
const UVICORN: Stack = Stack {
    name: "uvicorn (ASGI: FastAPI, Starlette)",
    fix: "declare the endpoint (`@app.websocket('/ws')`) and run `uvicorn main:app --host 0.0.0.0 --port $PORT` (with the `websockets` or `wsproto` package installed, or uvicorn answers upgrades with 404)",
};
const GUNICORN: Stack = Stack {
    name: "gunicorn",
    fix: "gunicorn's sync workers cannot hold WebSockets: use a worker class that can (`-k uvicorn.workers.UvicornWorker`, or eventlet/gevent for Flask-SocketIO) and `--bind 0.0.0.0:$PORT`",
};
const SPRING: Stack = Stack {
    name: "Spring Boot",
    fix: "register the endpoint at this path (`registry.addHandler(handler, \"/ws\")`, or STOMP `registry.addEndpoint(\"/ws\")`, plus `.withSockJS()` only if the client uses SockJS); the app listens on `server.port=${PORT}`",
};
const KESTREL: Stack = Stack {
    name: "ASP.NET Core (Kestrel)",
    fix: "call `app.UseWebSockets()` before the endpoint that accepts them, and let Kestrel listen on http://0.0.0.0:$PORT",
};

/// The stack an answer shows, if any.
fn recognise(response: &HttpResponse) -> Option<Stack> {
    let has = |name: &str, needle: &str| {
        response
            .header(name)
            .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
    };
    let body = response.body.to_ascii_lowercase();
    if body.contains("transport unknown") || body.contains("\"code\":0,\"message\"") {
        Some(SOCKET_IO)
    } else if has("x-powered-by", "express") {
        Some(EXPRESS)
    } else if has("server", "werkzeug") {
        Some(FLASK)
    } else if has("server", "uvicorn") {
        Some(UVICORN)
    } else if has("server", "gunicorn") {
        Some(GUNICORN)
    } else if has("server", "kestrel") {
        Some(KESTREL)
    } else if response.header("x-application-context").is_some()
        || (body.contains("\"timestamp\"")
            && body.contains("\"path\"")
            && body.contains("\"error\""))
    {
        Some(SPRING)
    } else {
        None
    }
}

/// The stack-specific fix for a refusal that the app itself gave (not a router or proxy).
pub(super) fn stack_hint(response: &HttpResponse, code: Code) -> Option<String> {
    if !matches!(
        code,
        Code::NotAWebsocketEndpoint
            | Code::PathNotFound
            | Code::UnexpectedStatus
            | Code::HandshakeInvalid
            | Code::UpgradeHeaderStripped
    ) {
        return None;
    }
    let stack = recognise(response)?;
    Some(format!("the app is {}: {}", stack.name, stack.fix))
}
