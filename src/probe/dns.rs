//! Stage 1: name to addresses (every A and AAAA), unless `--resolve` or an IP literal
//! pins them.

use std::net::IpAddr;
use std::time::Duration;

use super::failure::{Failure, FailureKind};
use crate::plan::{Proxy, Route};

/// Looks up every address of `route.host`; pinned addresses skip DNS.
pub async fn lookup(route: &Route) -> Result<Vec<IpAddr>, String> {
    if let Some(pinned) = &route.pinned {
        return Ok(pinned.clone());
    }
    let found = tokio::net::lookup_host((route.host.as_str(), route.port))
        .await
        .map_err(|e| e.to_string())?;
    let mut addrs: Vec<IpAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr.ip()) {
            addrs.push(addr.ip());
        }
    }
    if addrs.is_empty() {
        return Err(format!("no A or AAAA records for {}", route.host));
    }
    Ok(addrs)
}

/// The stage as a probe runs it: within `budget`; through a proxy, the name looked up is
/// the proxy's, so its failure is the proxy's (named with where it came from).
pub async fn stage(
    dial: &Route,
    via_proxy: Option<&Proxy>,
    budget: Duration,
) -> Result<Vec<IpAddr>, Failure> {
    match tokio::time::timeout(budget, lookup(dial)).await {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(message)) => Err(match via_proxy {
            Some(proxy) => Failure::new(
                FailureKind::ProxyUnreachable,
                format!(
                    "cannot resolve the proxy {} (from {}): {message}",
                    dial.host, proxy.source
                ),
            ),
            None => Failure::new(FailureKind::DnsFailed, message),
        }),
        Err(_) => Err(Failure::new(
            FailureKind::DnsTimeout,
            format!("no DNS answer for {} in time", dial.host),
        )),
    }
}
