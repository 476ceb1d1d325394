//! Stage 2: TCP connect, address after address, within the connect timeout.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use super::failure::{Failure, FailureKind};
use crate::plan::Proxy;

/// Why no address accepted the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    Refused,
    TimedOut,
    Other,
}

/// Tries each address in turn; the budget is shared, so a black hole on the first address
/// cannot eat the time of the others entirely (each gets an equal share at least).
pub async fn connect(
    addrs: &[IpAddr],
    port: u16,
    budget: Duration,
) -> Result<(TcpStream, SocketAddr), (ConnectError, String)> {
    let share = budget / addrs.len().max(1) as u32;
    let mut last = (ConnectError::Other, "no address to connect to".to_owned());
    let mut all_timed_out = true;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match tokio::time::timeout(share, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(error)) => {
                all_timed_out = false;
                let kind = match error.kind() {
                    ErrorKind::ConnectionRefused => ConnectError::Refused,
                    ErrorKind::TimedOut => ConnectError::TimedOut,
                    _ => ConnectError::Other,
                };
                last = (kind, format!("{addr}: {error}"));
            }
            Err(_) => {
                last = (
                    ConnectError::TimedOut,
                    format!(
                        "{addr}: no answer within {}",
                        humantime::format_duration(share)
                    ),
                );
            }
        }
    }
    if all_timed_out {
        last.0 = ConnectError::TimedOut;
    }
    Err(last)
}

/// The stage as a probe runs it; through a proxy, a failure to connect is the proxy's
/// (named with where it came from).
pub async fn stage(
    addrs: &[IpAddr],
    port: u16,
    via_proxy: Option<&Proxy>,
    budget: Duration,
) -> Result<(TcpStream, SocketAddr), Failure> {
    connect(addrs, port, budget)
        .await
        .map_err(|(error, message)| match (error, via_proxy) {
            (_, Some(proxy)) => Failure::new(
                FailureKind::ProxyUnreachable,
                format!(
                    "cannot reach the proxy {} (from {}): {message}",
                    proxy.display(),
                    proxy.source
                ),
            ),
            (ConnectError::Refused, None) => Failure::new(FailureKind::ConnectRefused, message),
            (ConnectError::TimedOut, None) => Failure::new(FailureKind::ConnectTimeout, message),
            (ConnectError::Other, None) => Failure::new(FailureKind::ConnectFailed, message),
        })
}
