//! NAT, published ports and isolation as one nftables table per daemon (`ip berth`), rewritten whole
//! and atomically (one `nft -f` transaction) from berthd's state whenever it changes, so a
//! crash or restart can never leave half a rule set: the next apply replaces it all.
//! Where `nft` is missing, the same rules go into iptables chains of berth's own (one
//! `iptables-restore --noflush` per table), jumped to from the built-in chains.

use super::ipam::Cidr;
use crate::errors::{Error, Result};
use std::fmt::Write;
use std::io::Write as _;
use std::net::Ipv4Addr;

pub struct NetRule {
    pub bridge: String,
    pub subnet: Cidr,
    pub gateway: Ipv4Addr,
    pub internal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRule {
    /// `tcp` or `udp`.
    pub proto: String,
    /// None: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// The whole table. Deleting and re-creating it in one script is atomic in nft.
pub fn script(table: &str, nets: &[NetRule], ports: &[PortRule]) -> String {
    let mut s = format!("table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n");
    // Nothing from outside the host reaches 127.0.0.0/8 (the bridges' route_localnet would
    // let a container with CAP_NET_RAW try: CVE-2020-8558).
    s.push_str("  chain prerouting { type nat hook prerouting priority dstnat; policy accept; ip daddr 127.0.0.0/8 return; fib daddr type local jump published; }\n");
    s.push_str("  chain output { type nat hook output priority -100; policy accept; fib daddr type local jump published; }\n");
    s.push_str("  chain published {\n");
    // The embedded DNS on each gateway is never taken over by a container's published :53.
    let gws: Vec<String> = nets.iter().map(|n| n.gateway.to_string()).collect();
    if !gws.is_empty() {
        let _ = writeln!(s, "    ip daddr {{ {} }} udp dport 53 return", gws.join(", "));
        let _ = writeln!(s, "    ip daddr {{ {} }} tcp dport 53 return", gws.join(", "));
    }
    for p in ports {
        let daddr = p.host_ip.filter(|i| !i.is_unspecified()).map(|i| format!("ip daddr {i} ")).unwrap_or_default();
        let _ = writeln!(s, "    {daddr}{} dport {} dnat to {}:{}", p.proto, p.host_port, p.ip, p.port);
    }
    s.push_str("  }\n");
    s.push_str("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
    for n in nets {
        let (br, sub) = (&n.bridge, n.subnet.canonical());
        if !n.internal {
            let _ = writeln!(s, "    ip saddr {sub} oifname != \"{br}\" masquerade");
        }
        // Hairpin: the host's own 127.0.0.1, or a container of this bridge, reaching a
        // published port here must get replies back through the host.
        let _ = writeln!(s, "    oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade");
        let _ = writeln!(s, "    oifname \"{br}\" ip saddr {sub} ct status dnat masquerade");
    }
    s.push_str("  }\n");
    s.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
    for n in nets {
        // Replies to the host's own 127.0.0.1 (hairpin) arrive de-NATed to 127.0.0.1: keep them.
        let _ = writeln!(s, "    iifname \"{}\" ip daddr 127.0.0.0/8 ct state != {{ established, related }} drop", n.bridge);
    }
    s.push_str("  }\n");
    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    // Internal networks first: not even a published port is a way in or out.
    for n in nets.iter().filter(|n| n.internal) {
        let br = &n.bridge;
        let _ = writeln!(s, "    iifname \"{br}\" oifname != \"{br}\" drop");
        let _ = writeln!(s, "    oifname \"{br}\" iifname != \"{br}\" drop");
    }
    // Published ports are meant to be reached, from anywhere else.
    s.push_str("    ct status dnat accept\n");
    for n in nets {
        let br = &n.bridge;
        for o in nets.iter().filter(|o| o.bridge != n.bridge) {
            let _ = writeln!(s, "    iifname \"{br}\" oifname \"{}\" drop", o.bridge);
        }
    }
    s.push_str("  }\n}\n");
    s
}

fn nft(input: &str) -> Result<()> {
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal(format!("running nft (install the nftables package): {e}")))?;
    child.stdin.take().unwrap().write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(Error::internal(format!("nft: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
}

impl Backend {
    /// `--firewall-backend` (dockerd's flag): `nftables`, `iptables`, or empty to pick
    /// nftables when `nft` is installed, iptables otherwise.
    pub fn choose(name: &str) -> Result<Backend> {
        match name {
            "nftables" => Ok(Backend::Nftables),
            "iptables" => Ok(Backend::Iptables),
            "" if on_path("nft") || !on_path("iptables-restore") => Ok(Backend::Nftables),
            "" => Ok(Backend::Iptables),
            other => Err(Error::invalid(format!("invalid firewall backend {other:?}: nftables or iptables"))),
        }
    }
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

pub fn apply(backend: Backend, table: &str, nets: &[NetRule], ports: &[PortRule]) -> Result<()> {
    match backend {
        Backend::Nftables => nft(&script(table, nets, ports)),
        Backend::Iptables => iptables_apply(table, nets, ports),
    }
}

/// Remove berth's rules (berthd stops with nothing running).
pub fn clear(backend: Backend, table: &str) -> Result<()> {
    match backend {
        Backend::Nftables => nft(&format!("table ip {table}\ndelete table ip {table}\n")),
        Backend::Iptables => iptables_clear(table),
    }
}

/// berth's chains and the built-in chains that jump to them: (table, built-in, match, chain suffix).
const JUMPS: &[(&str, &str, &str, &str)] = &[
    ("nat", "PREROUTING", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL", "PUB"),
    ("nat", "OUTPUT", "-m addrtype --dst-type LOCAL", "PUB"),
    ("nat", "POSTROUTING", "", "POST"),
    ("filter", "FORWARD", "", "FWD"),
    ("filter", "INPUT", "", "IN"),
];

fn chain(table: &str, suffix: &str) -> String {
    format!("{}-{suffix}", table.to_ascii_uppercase())
}

/// The two `iptables-restore` inputs (nat, filter): the same rules as [`script`], except that
/// iptables needs explicit accepts where another FORWARD rule or policy may drop.
pub fn iptables_rules(table: &str, nets: &[NetRule], ports: &[PortRule]) -> (String, String) {
    let (publ, post, fwd) = (chain(table, "PUB"), chain(table, "POST"), chain(table, "FWD"));
    let mut nat = format!("*nat\n:{publ} - [0:0]\n:{post} - [0:0]\n");
    for n in nets {
        for proto in ["udp", "tcp"] {
            let _ = writeln!(nat, "-A {publ} -d {}/32 -p {proto} -m {proto} --dport 53 -j RETURN", n.gateway);
        }
    }
    for p in ports {
        let daddr = p.host_ip.filter(|i| !i.is_unspecified()).map(|i| format!("-d {i}/32 ")).unwrap_or_default();
        let _ = writeln!(nat, "-A {publ} {daddr}-p {0} -m {0} --dport {1} -j DNAT --to-destination {2}:{3}", p.proto, p.host_port, p.ip, p.port);
    }
    for n in nets {
        let (br, sub) = (&n.bridge, n.subnet.canonical());
        if !n.internal {
            let _ = writeln!(nat, "-A {post} -s {sub} ! -o {br} -j MASQUERADE");
        }
        let _ = writeln!(nat, "-A {post} -s 127.0.0.0/8 -o {br} -j MASQUERADE");
        let _ = writeln!(nat, "-A {post} -s {sub} -o {br} -m conntrack --ctstate DNAT -j MASQUERADE");
    }
    nat.push_str("COMMIT\n");
    let inp = chain(table, "IN");
    let mut filter = format!("*filter\n:{fwd} - [0:0]\n:{inp} - [0:0]\n");
    for n in nets {
        let _ = writeln!(filter, "-A {inp} -i {} -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP", n.bridge);
    }
    for n in nets.iter().filter(|n| n.internal) {
        let br = &n.bridge;
        let _ = writeln!(filter, "-A {fwd} -i {br} ! -o {br} -j DROP");
        let _ = writeln!(filter, "-A {fwd} -o {br} ! -i {br} -j DROP");
    }
    let _ = writeln!(filter, "-A {fwd} -m conntrack --ctstate DNAT -j ACCEPT");
    for n in nets {
        let br = &n.bridge;
        for o in nets.iter().filter(|o| o.bridge != n.bridge) {
            let _ = writeln!(filter, "-A {fwd} -i {br} -o {} -j DROP", o.bridge);
        }
    }
    for n in nets {
        let br = &n.bridge;
        let _ = writeln!(filter, "-A {fwd} -i {br} -j ACCEPT");
        let _ = writeln!(filter, "-A {fwd} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
    }
    filter.push_str("COMMIT\n");
    (nat, filter)
}

fn run(bin: &str, args: &[&str], input: Option<&str>) -> Result<bool> {
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal(format!("running {bin}: {e}")))?;
    child.stdin.take().unwrap().write_all(input.unwrap_or("").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() && input.is_some() {
        return Err(Error::internal(format!("{bin}: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(out.status.success())
}

fn iptables_apply(table: &str, nets: &[NetRule], ports: &[PortRule]) -> Result<()> {
    let (nat, filter) = iptables_rules(table, nets, ports);
    // Declaring a chain in --noflush mode empties it: each table is replaced in one go.
    run("iptables-restore", &["-w", "--noflush"], Some(&nat))?;
    run("iptables-restore", &["-w", "--noflush"], Some(&filter))?;
    for (t, builtin, m, suffix) in JUMPS {
        let mut rule: Vec<String> = vec![builtin.to_string()];
        rule.extend(m.split_whitespace().map(str::to_string));
        rule.extend(["-j".to_string(), chain(table, suffix)]);
        let args = |op: &str| -> Vec<String> { ["-w", "-t", t, op].iter().map(|s| s.to_string()).chain(rule.iter().cloned()).collect() };
        let check: Vec<String> = args("-C");
        if !run("iptables", &check.iter().map(String::as_str).collect::<Vec<_>>(), None)? {
            let ins: Vec<String> = args("-I");
            run("iptables", &ins.iter().map(String::as_str).collect::<Vec<_>>(), Some(""))?;
        }
    }
    Ok(())
}

fn iptables_clear(table: &str) -> Result<()> {
    for (t, builtin, m, suffix) in JUMPS {
        let mut args: Vec<String> = ["-w", "-t", t, "-D", builtin].iter().map(|s| s.to_string()).collect();
        args.extend(m.split_whitespace().map(str::to_string));
        args.extend(["-j".to_string(), chain(table, suffix)]);
        while run("iptables", &args.iter().map(String::as_str).collect::<Vec<_>>(), None)? {}
    }
    for (t, _, _, suffix) in JUMPS {
        let c = chain(table, suffix);
        let _ = run("iptables", &["-w", "-t", t, "-F", &c], None);
        let _ = run("iptables", &["-w", "-t", t, "-X", &c], None);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_nat_ports_and_isolation() {
        let nets = vec![
            NetRule { bridge: "berth0".into(), subnet: Cidr::parse("172.17.0.0/16").unwrap(), gateway: Ipv4Addr::new(172, 17, 0, 1), internal: false },
            NetRule { bridge: "br-1".into(), subnet: Cidr::parse("10.9.0.0/24").unwrap(), gateway: Ipv4Addr::new(10, 9, 0, 1), internal: true },
        ];
        let ports = vec![
            PortRule { proto: "tcp".into(), host_ip: None, host_port: 8080, ip: Ipv4Addr::new(172, 17, 0, 2), port: 80 },
            PortRule { proto: "udp".into(), host_ip: Some(Ipv4Addr::new(127, 0, 0, 1)), host_port: 53, ip: Ipv4Addr::new(172, 17, 0, 3), port: 5353 },
        ];
        let s = script("berth", &nets, &ports);
        assert!(s.contains("tcp dport 8080 dnat to 172.17.0.2:80"));
        assert!(s.contains("ip daddr 127.0.0.1 udp dport 53 dnat to 172.17.0.3:5353"));
        assert!(s.contains("ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(!s.contains("ip saddr 10.9.0.0/24 oifname != \"br-1\" masquerade"), "internal networks get no NAT");
        assert!(s.contains("iifname \"berth0\" oifname \"br-1\" drop"));
        assert!(s.contains("iifname \"br-1\" oifname \"berth0\" drop"));
        assert!(s.contains("iifname \"br-1\" oifname != \"br-1\" drop"));
        assert!(s.find("iifname \"br-1\" oifname != \"br-1\" drop") < s.find("ct status dnat accept"), "internal drops come before the DNAT accept");
        assert!(s.contains("iifname \"berth0\" ip daddr 127.0.0.0/8 ct state != { established, related } drop"));
        assert!(s.contains("ip daddr { 172.17.0.1, 10.9.0.1 } udp dport 53 return"));
        // What nft itself says of it (a check run, nothing applied).
        let mut c = std::process::Command::new("nft").args(["-c", "-f", "-"]).stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("nft (nftables) is installed");
        c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "nft -c rejects the script: {}\n{s}", String::from_utf8_lossy(&out.stderr));
    }
}
