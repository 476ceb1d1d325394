//! `wscheck-server`: reads `$PORT` and limits from flags or the environment, serves until
//! SIGTERM or SIGINT, then closes every socket with 1001 and exits 0.

use std::process::ExitCode;

/// jemalloc: tokio's per-socket state (task, I/O registration) is cache-line aligned, which
/// the system allocators (glibc's, and musl's in the static CF bundle) serve with a lot of
/// padding; with jemalloc an idle socket costs about a quarter less (794 B against 1 044 B
/// with glibc's, measured), and the musl build is as fast as the glibc one.
#[cfg(not(windows))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use std::time::Duration;

use bytesize::ByteSize;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use wscheck_server::{Config, Environment};

/// A known-good WebSocket echo server to push to Cloud Foundry.
///
/// Every WebSocket gets "Hi, this is the Echo-Server", then "Echo: <msg>" for each text
/// message. GET /.wscheck/info shows what reached the app; GET /healthz is the health check.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port to listen on, on 0.0.0.0 and [::].
    #[arg(long, env = "PORT", default_value_t = 8080, value_name = "PORT")]
    port: u16,
    /// Largest WebSocket message accepted; larger ones are closed with 1009.
    #[arg(
        long,
        env = "WSCHECK_MAX_MESSAGE_SIZE",
        default_value = "1MiB",
        value_name = "SIZE"
    )]
    max_message_size: ByteSize,
    /// Most WebSockets at once; further upgrades get 503.
    #[arg(
        long,
        env = "WSCHECK_MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_name = "N"
    )]
    max_connections: usize,
    /// Time a client has to send its request head.
    #[arg(long, env = "WSCHECK_HEADER_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// Interval of server pings (0s disables); keeps 60 s idle cut-offs away.
    #[arg(long, env = "WSCHECK_PING_INTERVAL", default_value = "25s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
    /// Back-pressure: while more than this much of a socket's output is unsent (its client
    /// reads slower than it sends), stop reading from it. Nothing is dropped.
    #[arg(
        long,
        env = "WSCHECK_MAX_PENDING_OUTPUT",
        default_value = "4MiB",
        value_name = "SIZE"
    )]
    max_pending_output: ByteSize,
    /// A client that takes none of its pending output for this long is disconnected.
    #[arg(long, env = "WSCHECK_SEND_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    send_timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .init();

    let max_message_size = match usize::try_from(args.max_message_size.as_u64()) {
        Ok(size) if size > 0 => size,
        _ => {
            eprintln!(
                "wscheck-server: --max-message-size must be between 1 byte and {}",
                usize::MAX
            );
            return ExitCode::from(2);
        }
    };
    let max_pending_output = match usize::try_from(args.max_pending_output.as_u64()) {
        Ok(size) if size > 0 => size,
        _ => {
            eprintln!(
                "wscheck-server: --max-pending-output must be between 1 byte and {}",
                usize::MAX
            );
            return ExitCode::from(2);
        }
    };
    if args.send_timeout.is_zero() {
        eprintln!("wscheck-server: --send-timeout must be more than 0s");
        return ExitCode::from(2);
    }
    if args.max_connections == 0 {
        eprintln!("wscheck-server: --max-connections must be at least 1");
        return ExitCode::from(2);
    }
    let config = Config {
        max_message_size,
        max_connections: args.max_connections,
        header_timeout: args.header_timeout,
        ping_interval: (!args.ping_interval.is_zero()).then_some(args.ping_interval),
        max_pending_output,
        send_timeout: args.send_timeout,
        environment: Environment::from_process(),
        ..Config::default()
    };

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wscheck-server: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        // Before the port opens: whoever sees it open may send SIGTERM.
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let listeners = match wscheck_server::bind(args.port) {
            Ok(listeners) => listeners,
            Err(error) => {
                eprintln!(
                    "wscheck-server: cannot listen on port {}: {error}",
                    args.port
                );
                return ExitCode::from(2);
            }
        };
        for listener in &listeners {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, version = wscheck_server::VERSION, "listening");
            }
        }
        wscheck_server::serve(listeners, config, shutdown).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Cancels `token` on SIGTERM (what CF sends) or SIGINT (Ctrl-C). The handlers are in
/// place when this returns, before the future is first polled: a SIGTERM that comes
/// early still closes the sockets rather than killing the process.
#[cfg(unix)]
fn cancel_on_signal(token: CancellationToken) -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down: closing sockets with 1001");
        token.cancel();
    }
}

/// Cancels `token` on Ctrl-C (Windows has no SIGTERM).
#[cfg(not(unix))]
async fn cancel_on_signal(token: CancellationToken) {
    if tokio::signal::ctrl_c().await.is_ok() {
        tracing::info!(
            signal = "Ctrl-C",
            "shutting down: closing sockets with 1001"
        );
        token.cancel();
    }
}
