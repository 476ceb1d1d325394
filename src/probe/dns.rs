//! Stage 1: name to addresses (every A and AAAA), unless `--resolve` or an IP literal
//! pins them.

use std::net::IpAddr;

use crate::plan::Route;

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
