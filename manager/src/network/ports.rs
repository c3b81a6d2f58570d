//! Published ports: `-p`/`-P` bindings resolved to concrete host ports, each held by a bound
//! (never listening) socket so the port is berth's while the container runs. Traffic itself
//! never reaches those sockets: nftables DNAT sends it to the container first.

use super::firewall::PortRule;
use crate::errors::{Error, Result};
use bollard_stubs::models::{HostConfig, PortBinding};
use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

/// `80/tcp` → (80, "tcp").
fn parse_port_key(k: &str) -> Result<(u16, String)> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" {
        return Err(Error::invalid(format!("invalid proto: {proto} (berth publishes tcp and udp)")));
    }
    let port = p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| Error::invalid(format!("invalid containerPort: {p}")))?;
    Ok((port, proto))
}

/// What to publish: (proto, host ip, host port (0 = any free), container port).
pub fn wanted(hc: &HostConfig, exposed: &[String]) -> Result<Vec<(String, Option<Ipv4Addr>, u16, u16)>> {
    let mut out = vec![];
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = hc.port_bindings.clone().unwrap_or_default();
    let mut keys: Vec<&String> = bindings.keys().collect();
    keys.sort();
    for k in keys {
        let (port, proto) = parse_port_key(k)?;
        let list = bindings[k].clone().unwrap_or_default();
        let list = if list.is_empty() { vec![PortBinding::default()] } else { list };
        for b in list {
            let ip = match b.host_ip.as_deref().unwrap_or("") {
                "" => None,
                s => match s.parse::<Ipv4Addr>() {
                    Ok(ip) => Some(ip),
                    // IPv6 host addresses: berth's networks are IPv4 only; Docker too skips
                    // them when IPv6 is off.
                    Err(_) if s.contains(':') => continue,
                    Err(_) => return Err(Error::invalid(format!("invalid IP address: {s}"))),
                },
            };
            let hp = b.host_port.as_deref().unwrap_or("");
            let host_port = if hp.is_empty() { 0 } else { hp.parse::<u16>().map_err(|_| Error::invalid(format!("invalid hostPort: {hp} (ranges are not supported)")))? };
            out.push((proto.clone(), ip, host_port, port));
        }
    }
    if hc.publish_all_ports.unwrap_or(false) {
        for e in exposed {
            if !bindings.contains_key(e) {
                let (port, proto) = parse_port_key(e)?;
                out.push((proto, None, 0, port));
            }
        }
    }
    Ok(out)
}

/// Bind (without listening) to reserve `ip:port`; port 0 picks a free one.
fn reserve(proto: &str, ip: Option<Ipv4Addr>, port: u16) -> Result<(OwnedFd, u16)> {
    let ty = if proto == "udp" { SockType::Datagram } else { SockType::Stream };
    let fd = socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None).map_err(|e| Error::internal(format!("socket: {e}")))?;
    let ip = ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let addr = SockaddrIn::from(SocketAddrV4::new(ip, port));
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).map_err(|e| {
        if e == nix::errno::Errno::EADDRINUSE {
            Error::conflict(format!("Bind for {ip}:{port} failed: port is already allocated"))
        } else {
            Error::invalid(format!("Bind for {ip}:{port} failed: {e}"))
        }
    })?;
    let got: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(|e| Error::internal(format!("getsockname: {e}")))?;
    Ok((fd, got.port()))
}

/// Reserve every wanted binding for a container at `ip`; all or nothing.
pub fn publish(wanted: &[(String, Option<Ipv4Addr>, u16, u16)], ip: Ipv4Addr) -> Result<(Vec<PortRule>, Vec<OwnedFd>)> {
    let (mut rules, mut fds) = (vec![], vec![]);
    for (proto, host_ip, host_port, port) in wanted {
        let (fd, hp) = reserve(proto, *host_ip, *host_port)?;
        fds.push(fd);
        rules.push(PortRule { proto: proto.clone(), host_ip: *host_ip, host_port: hp, ip, port: *port });
    }
    Ok((rules, fds))
}

/// Re-take the reservations of a container that kept running across a berthd restart.
pub fn rebind(rules: &[PortRule]) -> Vec<OwnedFd> {
    rules
        .iter()
        .filter_map(|r| match reserve(&r.proto, r.host_ip, r.host_port) {
            Ok((fd, _)) => Some(fd),
            Err(e) => {
                tracing::warn!("re-reserving {}:{}/{}: {e}", r.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), r.host_port, r.proto);
                None
            }
        })
        .collect()
}

/// Docker's `NetworkSettings.Ports`: every exposed port, with its bindings or null.
pub fn port_map(rules: &[PortRule], exposed: &[String]) -> HashMap<String, Option<Vec<PortBinding>>> {
    let mut m: HashMap<String, Option<Vec<PortBinding>>> = exposed.iter().map(|e| (if e.contains('/') { e.clone() } else { format!("{e}/tcp") }, None)).collect();
    for r in rules {
        let b = PortBinding { host_ip: Some(r.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string()), host_port: Some(r.host_port.to_string()) };
        m.entry(format!("{}/{}", r.port, r.proto)).or_insert(None).get_or_insert_with(Vec::new).push(b);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_reads_bindings_and_publish_all() {
        let mut pb = HashMap::new();
        pb.insert("80/tcp".to_string(), Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some("8080".into()) }]));
        pb.insert("53/udp".to_string(), None);
        let hc = HostConfig { port_bindings: Some(pb), publish_all_ports: Some(true), ..Default::default() };
        let w = wanted(&hc, &["80/tcp".into(), "443/tcp".into()]).unwrap();
        assert!(w.contains(&("tcp".into(), Some(Ipv4Addr::LOCALHOST), 8080, 80)));
        assert!(w.contains(&("udp".into(), None, 0, 53)));
        assert!(w.contains(&("tcp".into(), None, 0, 443)));
        assert_eq!(w.len(), 3);
        let mut bad = HashMap::new();
        bad.insert("80/sctp".to_string(), None);
        assert!(wanted(&HostConfig { port_bindings: Some(bad), ..Default::default() }, &[]).is_err());
    }

    #[test]
    fn a_taken_port_is_a_conflict_and_random_ports_are_real() {
        let (rules, _fds) = publish(&[("tcp".into(), Some(Ipv4Addr::LOCALHOST), 0, 80)], Ipv4Addr::new(10, 0, 0, 2)).unwrap();
        assert_ne!(rules[0].host_port, 0);
        let e = publish(&[("tcp".into(), Some(Ipv4Addr::LOCALHOST), rules[0].host_port, 80)], Ipv4Addr::new(10, 0, 0, 3)).unwrap_err();
        assert!(e.message.contains("port is already allocated"), "{}", e.message);
    }
}
