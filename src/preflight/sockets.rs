//! Which addresses an app listens on, read from `/proc` without dialling anything: the
//! process tree's socket inodes (`/proc/<pid>/fd`) matched against the listening sockets
//! of `/proc/<pid>/net/tcp` and `tcp6` (Linux).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `pid` and every process below it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![pid];
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, parent_of(p)?)))
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 4, after the parenthesised name (which may itself hold spaces).
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The TCP addresses the processes of `tree` listen on, in the order the kernel lists them.
pub fn listening(tree: &[u32]) -> Vec<SocketAddr> {
    let inodes: HashSet<u64> = tree.iter().flat_map(|pid| socket_inodes(*pid)).collect();
    let Some(root) = tree.first() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{root}/net/{table}")).unwrap_or_default();
        for (addr, inode) in text.lines().skip(1).filter_map(listener) {
            if inodes.contains(&inode) && !found.contains(&addr) {
                found.push(addr);
            }
        }
    }
    found
}

fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| {
        let target = std::fs::read_link(fd.ok()?.path()).ok()?;
        let target = target.to_str()?;
        target
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// A listening socket's address and inode from one line of `/proc/net/tcp{,6}`.
fn listener(line: &str) -> Option<(SocketAddr, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    Some((SocketAddr::new(kernel_ip(ip)?, port), inode))
}

/// The kernel prints addresses as 32-bit words in host byte order (little-endian here).
fn kernel_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_le_bytes(),
        )
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// Whether CF's port health check (which dials the instance's own, non-loopback address)
/// would reach a socket bound to `addr`.
pub fn reachable_from_outside(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => !ip.is_loopback(),
        IpAddr::V6(ip) => {
            !ip.is_loopback() && ip.to_ipv4_mapped().is_none_or(|v4| !v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines_give_listeners_and_their_inodes() {
        let v4 = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            listener(v4),
            Some(("127.0.0.1:8080".parse().unwrap(), 4242))
        );
        let any6 = "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listener(any6), Some(("[::]:8080".parse().unwrap(), 77)));
        let established = v4.replace(" 0A ", " 01 ");
        assert_eq!(listener(&established), None);
        assert!(!reachable_from_outside(&"127.0.0.1:8080".parse().unwrap()));
        assert!(reachable_from_outside(&"0.0.0.0:8080".parse().unwrap()));
        assert!(reachable_from_outside(&"[::]:8080".parse().unwrap()));
        assert!(!reachable_from_outside(
            &"[::ffff:127.0.0.1]:8080".parse().unwrap()
        ));
    }

    #[test]
    fn a_listener_of_this_process_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let found = listening(&process_tree(std::process::id()));
        assert!(found.contains(&addr), "{found:?} lacks {addr}");
    }
}
