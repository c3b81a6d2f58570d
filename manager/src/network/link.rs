//! Links over rtnetlink: the bridge of a network, and a veth pair per endpoint whose inner
//! end is created directly in the container's network namespace and configured there.

use crate::errors::{Error, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

fn nl_err(what: &str, e: rtnetlink::Error) -> Error {
    Error::internal(format!("{what}: {}", io_err(&e).map(|e| e.to_string()).unwrap_or_else(|| e.to_string())))
}

fn io_err(e: &rtnetlink::Error) -> Option<std::io::Error> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.to_io()),
        _ => None,
    }
}

fn errno(e: &rtnetlink::Error) -> i32 {
    io_err(e).and_then(|e| e.raw_os_error()).unwrap_or(0)
}

/// A netlink connection bound to the namespace of the thread that opened it.
pub fn connect(rt: &tokio::runtime::Handle) -> Result<Handle> {
    let _g = rt.enter();
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::internal(format!("netlink: {e}")))?;
    rt.spawn(conn);
    Ok(handle)
}

/// A netlink connection inside the network namespace at `netns` (the socket keeps that
/// namespace whichever thread later uses it).
pub fn connect_in(rt: &tokio::runtime::Handle, netns: &Path) -> Result<Handle> {
    let f = std::fs::File::open(netns).map_err(|e| Error::internal(format!("{}: {e}", netns.display())))?;
    let rt = rt.clone();
    std::thread::spawn(move || {
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| Error::internal(format!("setns: {e}")))?;
        connect(&rt)
    })
    .join()
    .map_err(|_| Error::internal("netlink thread panicked"))?
}

pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    match h.link().get().match_name(name.to_string()).execute().try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == libc::ENODEV => Ok(None),
        Err(e) => Err(nl_err(&format!("looking up {name}"), e)),
    }
}

fn sysctl(path: &str, v: &str) {
    if let Err(e) = std::fs::write(path, v) {
        tracing::warn!("{path}: {e}");
    }
}

/// The bridge `name` with `gateway/prefix`, up; made if missing. Returns its index and
/// whether this call made it. An existing link that is not a bridge is refused.
pub async fn ensure_bridge(h: &Handle, name: &str, gateway: Ipv4Addr, prefix: u8, mtu: u32) -> Result<(u32, bool)> {
    let mut made = false;
    let idx = match index_of(h, name).await? {
        Some(i) => {
            if !is_bridge(h, i).await? {
                return Err(Error::conflict(format!("{name} exists and is not a bridge: choose another bridge name")));
            }
            i
        }
        None => {
            made = true;
            let mut b = LinkBridge::new(name);
            if mtu != 0 {
                b = b.mtu(mtu);
            }
            match h.link().add(b.build()).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == libc::EEXIST => {}
                Err(e) => return Err(nl_err(&format!("creating bridge {name}"), e)),
            }
            index_of(h, name).await?.ok_or_else(|| Error::internal(format!("bridge {name} vanished")))?
        }
    };
    match h.address().add(idx, IpAddr::V4(gateway), prefix).execute().await {
        Ok(()) => {}
        Err(e) if errno(&e) == libc::EEXIST => {}
        Err(e) => return Err(nl_err(&format!("adding {gateway}/{prefix} to {name}"), e)),
    }
    h.link().set(LinkUnspec::new_with_index(idx).up().build()).execute().await.map_err(|e| nl_err(&format!("bringing {name} up"), e))?;
    // Published ports are reachable from the host's 127.0.0.1: DNAT'd loopback traffic may
    // leave through the bridge (then masqueraded). Containers need the host to forward.
    sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"), "1");
    sysctl("/proc/sys/net/ipv4/ip_forward", "1");
    Ok((idx, made))
}

async fn is_bridge(h: &Handle, index: u32) -> Result<bool> {
    use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo};
    let m = h.link().get().match_index(index).execute().try_next().await.map_err(|e| nl_err("looking up a link", e))?;
    Ok(m.is_some_and(|m| {
        m.attributes.iter().any(|a| matches!(a, LinkAttribute::LinkInfo(infos) if infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)))))
    }))
}

pub async fn delete(h: &Handle, name: &str) -> Result<()> {
    if let Some(i) = index_of(h, name).await? {
        match h.link().del(i).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == libc::ENODEV => {}
            Err(e) => return Err(nl_err(&format!("deleting {name}"), e)),
        }
    }
    Ok(())
}

pub struct Veth<'a> {
    pub host_name: &'a str,
    pub bridge: u32,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// A veth pair: `host_name` on the bridge, up; its peer `ifname` made inside `netns`.
pub async fn add_veth(h: &Handle, v: &Veth<'_>) -> Result<()> {
    let ns = std::fs::File::open(v.netns).map_err(|e| Error::internal(format!("{}: {e}", v.netns.display())))?;
    let mut peer = LinkUnspec::new_with_name(v.ifname).address(v.mac.to_vec()).setns_by_fd(ns.as_raw_fd());
    let mut host = LinkMessageBuilder::<rtnetlink::LinkVeth>::new_with_info_kind(InfoKind::Veth).name(v.host_name.to_string()).controller(v.bridge).up();
    if v.mtu != 0 {
        peer = peer.mtu(v.mtu);
        host = host.mtu(v.mtu);
    }
    let msg: LinkMessage = host.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build()))).build();
    h.link().add(msg).execute().await.map_err(|e| nl_err(&format!("creating veth {}", v.host_name), e))?;
    drop(ns);
    Ok(())
}

/// Inside the container's namespace: address, link up, and (when `gateway` is given) the
/// default route.
pub async fn configure_inside(h: &Handle, ifname: &str, ip: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) -> Result<()> {
    let idx = index_of(h, ifname).await?.ok_or_else(|| Error::internal(format!("{ifname} missing in the container's namespace")))?;
    h.address().add(idx, IpAddr::V4(ip), prefix).execute().await.map_err(|e| nl_err(&format!("adding {ip}/{prefix} to {ifname}"), e))?;
    h.link().set(LinkUnspec::new_with_index(idx).up().build()).execute().await.map_err(|e| nl_err(&format!("bringing {ifname} up"), e))?;
    if let Some(gw) = gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(idx).build();
        match h.route().add(route).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == libc::EEXIST => {}
            Err(e) => return Err(nl_err(&format!("default route via {gw}"), e)),
        }
    }
    Ok(())
}
