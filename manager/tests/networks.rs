//! Black-box tests of berthd's networks, driven by the real docker CLI over berthd's socket:
//! the default bridge with published ports reached from another "host" (a network
//! namespace on a veth), from the host's 127.0.0.1 and from other containers; user-defined
//! networks with DNS by name and alias, isolation, fixed addresses, `container:` mode,
//! connect/disconnect while running; and rules, reservations and addresses surviving a
//! `kill -9` of berthd. Needs root.
//!
//!   cargo test -p berth-manager --test networks -- --test-threads=2
//!
//! Every sandbox has its own default bridge (`--bridge bt…`, `--bip` in a /24 of its own),
//! user networks named after it, and checks that nothing is left: no veth, no bridge, no
//! nft table, no netns.

mod common;

use std::time::Duration;

use common::containers::{docker_bin, poll, Docker};
use common::{cmd, links_with_prefix, run_timeout, Out, Sandbox};

fn sandbox(name: &str) -> Option<Sandbox> {
    let docker = docker_bin();
    if !common::need_tools(name, &["umoci", "skopeo", "docker-registry", "/bin/busybox", "nft", "ip", &docker]) {
        return None;
    }
    let mut sb = Sandbox::new(name);
    sb.start_registry(None);
    sb.start_berthd();
    Some(sb)
}

/// A second "host": a network namespace joined to this one by a veth, with addresses in
/// the sandbox's 7th /24 (host side .1, client side .2). Removed on drop.
struct ClientHost {
    ns: String,
    host_if: String,
    pub host_ip: String,
}

impl ClientHost {
    fn new(sb: &Sandbox) -> ClientHost {
        let ns = format!("{}-client", sb.bridge);
        let (host_if, peer) = (format!("{}h", sb.bridge), format!("{}c", sb.bridge));
        let (host_ip, client_ip) = (sb.addr(7, 1), sb.addr(7, 2));
        let c = ClientHost { ns: ns.clone(), host_if: host_if.clone(), host_ip: host_ip.clone() };
        for args in [
            vec!["netns", "add", &ns],
            vec!["link", "add", &host_if, "type", "veth", "peer", "name", &peer],
            vec!["link", "set", &peer, "netns", &ns],
            vec!["addr", "add", &format!("{host_ip}/24"), "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec!["-n", &ns, "addr", "add", &format!("{client_ip}/24"), "dev", &peer],
            vec!["-n", &ns, "link", "set", &peer, "up"],
            vec!["-n", &ns, "link", "set", "lo", "up"],
        ] {
            let out = run_timeout(&mut cmd("ip", &args), Duration::from_secs(10));
            assert!(out.ok(), "ip {args:?}: {out}");
        }
        c
    }

    /// `wget -qO- URL` from the client host (busybox, 5 s).
    fn get(&self, url: &str) -> Out {
        run_timeout(&mut cmd("ip", &["netns", "exec", &self.ns, "/bin/busybox", "timeout", "5", "/bin/busybox", "wget", "-qO-", url]), Duration::from_secs(20))
    }
}

impl Drop for ClientHost {
    fn drop(&mut self) {
        let _ = cmd("ip", &["link", "del", &self.host_if]).output();
        let _ = cmd("ip", &["netns", "del", &self.ns]).output();
    }
}

/// `wget -qO- URL` from the host itself.
fn host_get(url: &str) -> Out {
    run_timeout(&mut cmd("/bin/busybox", &["timeout", "5", "/bin/busybox", "wget", "-qO-", url]), Duration::from_secs(20))
}

/// A container command that serves `text` over HTTP on port 80.
fn httpd(text: &str) -> String {
    format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www")
}

fn nft_table(sb: &Sandbox) -> String {
    let out = run_timeout(&mut cmd("nft", &["list", "table", "ip", &format!("berth_{}", sb.bridge)]), Duration::from_secs(10));
    if out.ok() {
        out.stdout
    } else {
        String::new()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// After the containers are gone, berthd stopped gracefully leaves no bridge and no table.
fn stop_and_check_clean(mut sb: Sandbox, mut d: Docker) {
    d.finish();
    drop(d);
    sb.stop_berthd();
    let left = links_with_prefix(&sb.bridge);
    assert!(left.is_empty(), "links left after berthd stopped: {left:?}");
    assert!(nft_table(&sb).is_empty(), "nft table berth_{} left after berthd stopped", sb.bridge);
}

#[test]
fn default_bridge_published_ports() {
    let Some(sb) = sandbox("netbridge") else { return };
    let d = Docker::new(&sb);
    let img = d.busybox(&sb);
    let client = ClientHost::new(&sb);
    let port = free_port();
    let pub_any = format!("{port}:80");
    d.ok(&["run", "-d", "--name", "web", "-p", &pub_any, "-p", "127.0.0.1::80", &img, "sh", "-c", &httpd("hello-web")]);
    let ip = d.inspect("web", "{{.NetworkSettings.Networks.bridge.IPAddress}}");
    let prefix = sb.addr(0, 1).trim_end_matches('1').to_string();
    assert!(ip.starts_with(&prefix) && ip != sb.addr(0, 1), "web's address {ip} is not a host of the bridge's subnet {}", sb.subnet(0));
    assert_eq!(d.inspect("web", "{{.NetworkSettings.Networks.bridge.Gateway}}"), sb.addr(0, 1));
    assert_eq!(d.inspect("web", "{{.NetworkSettings.IPAddress}}"), ip, "Docker's legacy top-level field");
    // The random loopback binding, as `docker port` and inspect show it.
    let ports = d.ok(&["port", "web", "80/tcp"]);
    let lo_port = ports.lines().find_map(|l| l.strip_prefix("127.0.0.1:")).unwrap_or_else(|| panic!("no 127.0.0.1 binding in {ports:?}")).trim().to_string();
    assert!(ports.contains(&format!("0.0.0.0:{port}")), "{ports}");
    assert!(d.ok(&["ps"]).contains(&format!("0.0.0.0:{port}->80/tcp")), "ps shows the binding");

    // From another host, through this host's address on a veth.
    let got = poll(Duration::from_secs(10), || {
        let o = client.get(&format!("http://{}:{port}/", client.host_ip));
        o.stdout.contains("hello-web").then_some(o)
    });
    assert!(got.is_some(), "the published port is not reachable from another host: {}", client.get(&format!("http://{}:{port}/", client.host_ip)));
    // From the host itself, on 127.0.0.1 (both bindings) and on its own address.
    assert!(host_get(&format!("http://127.0.0.1:{port}/")).stdout.contains("hello-web"));
    assert!(host_get(&format!("http://127.0.0.1:{lo_port}/")).stdout.contains("hello-web"));
    assert!(host_get(&format!("http://{}:{port}/", client.host_ip)).stdout.contains("hello-web"));
    // The loopback-only binding is not reachable from the other host.
    assert!(!client.get(&format!("http://{}:{lo_port}/", client.host_ip)).stdout.contains("hello-web"));
    // From another container: by address, through the published port (hairpin), by --link.
    let out = d.ok(&["run", "--rm", &img, "wget", "-qO-", &format!("http://{ip}/")]);
    assert!(out.contains("hello-web"), "{out}");
    let out = d.ok(&["run", "--rm", &img, "timeout", "5", "wget", "-qO-", &format!("http://{}:{port}/", client.host_ip)]);
    assert!(out.contains("hello-web"), "hairpin: {out}");
    let out = d.ok(&["run", "--rm", "--link", "web:websrv", &img, "sh", "-c", "grep websrv /etc/hosts && wget -qO- http://websrv/"]);
    assert!(out.contains(&ip) && out.contains("hello-web"), "--link: {out}");
    // The container's own view: its address, default route via the gateway, a hosts entry.
    let out = d.ok(&["run", "--rm", "--hostname", "me", &img, "sh", "-c", "ip -4 addr show eth0; ip route; grep me /etc/hosts"]);
    assert!(out.contains(&format!("default via {}", sb.addr(0, 1))), "{out}");

    // The same host port again: Docker's error, exit 125, and nothing left of the attempt.
    let again = d.run(&["run", "-d", "--name", "web2", "-p", &pub_any, &img, "sleep", "60"]);
    assert_eq!(again.status.code(), Some(125), "{again}");
    assert!(again.stderr.contains("port is already allocated"), "{again}");
    let web2 = d.inspect("web2", "{{.Id}}");
    assert!(links_with_prefix(&format!("vb{}", &web2[..10])).is_empty(), "the failed start left its veth");
    assert!(host_get(&format!("http://127.0.0.1:{port}/")).stdout.contains("hello-web"), "the first container lost its port");

    // Removing the container takes its rules away.
    assert!(nft_table(&sb).contains(&format!("dport {port}")));
    d.ok(&["rm", "-f", "web", "web2"]);
    assert!(!nft_table(&sb).contains(&format!("dport {port}")), "rule left: {}", nft_table(&sb));
    // And the port is free again: a new container can take it.
    d.ok(&["run", "-d", "--name", "web3", "-p", &pub_any, &img, "sh", "-c", &httpd("third")]);
    assert!(poll(Duration::from_secs(10), || host_get(&format!("http://127.0.0.1:{port}/")).stdout.contains("third").then_some(())).is_some());
    drop(client);
    stop_and_check_clean(sb, d);
}

#[test]
fn user_networks_dns_isolation_connect() {
    let Some(sb) = sandbox("netuser") else { return };
    let d = Docker::new(&sb);
    let img = d.busybox(&sb);
    let (na, nb) = (format!("{}a", sb.bridge), format!("{}b", sb.bridge));
    let (sa, sb_) = (sb.subnet(1), sb.subnet(2));
    d.ok(&["network", "create", "--subnet", &sa, "-o", &format!("com.docker.network.bridge.name={na}"), "--label", "t=1", "neta"]);
    d.ok(&["network", "create", "--subnet", &sb_, "-o", &format!("com.docker.network.bridge.name={nb}"), "-o", "com.docker.network.driver.mtu=1400", "netb"]);
    let ni = format!("{}i", sb.bridge);
    d.ok(&["network", "create", "--internal", "--subnet", &sb.subnet(3), "-o", &format!("com.docker.network.bridge.name={ni}"), "neti"]);
    // Bad requests: a clear error and nothing made.
    let o = d.run(&["network", "create", "--subnet", &sa, "-o", &format!("com.docker.network.bridge.name={}x", sb.bridge), "clash"]);
    assert!(!o.ok() && o.stderr.contains("overlaps"), "{o}");
    let o = d.run(&["network", "create", "--subnet", &sb.subnet(3), "--gateway", "192.0.2.1", "-o", &format!("com.docker.network.bridge.name={}x", sb.bridge), "badgw"]);
    assert!(!o.ok() && o.stderr.contains("gateway"), "{o}");
    let o = d.run(&["network", "create", "neta"]);
    assert!(!o.ok() && o.stderr.contains("already exists"), "{o}");
    assert!(links_with_prefix(&format!("{}x", sb.bridge)).is_empty());
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.split_whitespace().collect::<Vec<_>>(), ["bridge", "host", "neta", "netb", "neti", "none"]);
    // An option's MTU reaches the container; an internal network has no way out.
    let out = d.ok(&["run", "--rm", "--network", "netb", &img, "ip", "link", "show", "eth0"]);
    assert!(out.contains("mtu 1400"), "{out}");
    let out = d.run(&["run", "--rm", "--network", "neti", &img, "sh", "-c", &format!("ip route; timeout 3 wget -qO- http://{}/ && echo REACHED", sb.addr(0, 1))]);
    assert!(out.stdout.contains(&sb.subnet(3)) && !out.stdout.contains("default") && !out.stdout.contains("REACHED"), "internal network: {out}");
    // Nothing is published from an internal network.
    let iport = free_port();
    d.ok(&["run", "-d", "--name", "inside", "--network", "neti", "-p", &format!("{iport}:80"), &img, "sleep", "60"]);
    assert!(!nft_table(&sb).contains(&format!("dport {iport}")), "published from an internal network");
    d.ok(&["rm", "-f", "inside"]);
    // A network named by its ID is the same one endpoint (the CLI keys endpoints by what it was given).
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "netb"]);
    let out = d.ok(&["run", "--rm", "--network", id.trim(), &img, "ls", "/sys/class/net"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"], "{out}");
    d.ok(&["network", "rm", "neti"]);

    d.ok(&["run", "-d", "--name", "srv", "--network", "neta", "--network-alias", "websvc", &img, "sh", "-c", &httpd("hello-user")]);
    let srv_ip = d.inspect("srv", "{{.NetworkSettings.Networks.neta.IPAddress}}");
    assert_eq!(srv_ip, sb.addr(1, 2), "the first address of the pool");
    // By name and by alias, through the embedded DNS on the gateway.
    let out = d.ok(&["run", "--rm", "--network", "neta", &img, "sh", "-c", "cat /etc/resolv.conf; wget -qO- http://srv/; wget -qO- http://websvc/; nslookup srv"]);
    assert!(out.contains(&format!("nameserver {}", sb.addr(1, 1))), "{out}");
    assert_eq!(out.matches("hello-user").count(), 2, "{out}");
    assert!(out.contains(&srv_ip), "{out}");
    // A fixed address, and one outside the subnet refused.
    let fixed = sb.addr(1, 77);
    let out = d.ok(&["run", "--rm", "--network", "neta", "--ip", &fixed, &img, "ip", "-4", "addr", "show", "eth0"]);
    assert!(out.contains(&format!("{fixed}/24")), "{out}");
    let o = d.run(&["run", "--rm", "--network", "neta", "--ip", "192.0.2.9", &img, "true"]);
    assert!(!o.ok() && o.stderr.contains("192.0.2.9"), "{o}");
    // Another network can neither resolve nor reach it.
    let out = d.run(&["run", "--rm", "--network", "netb", &img, "sh", "-c", &format!("nslookup srv {}; timeout 3 wget -qO- http://{srv_ip}/ && echo REACHED", sb.addr(2, 1))]);
    assert!(!out.stdout.contains("REACHED") && !out.stdout.contains("hello-user"), "isolation: {out}");
    assert!(!out.stdout.contains(&format!("Address: {srv_ip}")), "netb resolved srv: {out}");
    // container: mode shares srv's namespace.
    let out = d.ok(&["run", "--rm", "--network", "container:srv", &img, "wget", "-qO-", "http://127.0.0.1/"]);
    assert!(out.contains("hello-user"), "{out}");

    // connect / disconnect while running.
    d.ok(&["run", "-d", "--name", "cli", "--network", "netb", &img, "sleep", "600"]);
    let reach = |expect: bool| {
        let o = d.run(&["exec", "cli", "timeout", "3", "wget", "-qO-", "http://srv/"]);
        assert_eq!(o.stdout.contains("hello-user"), expect, "cli reaching srv: {o}");
    };
    reach(false);
    d.ok(&["network", "connect", "--alias", "client", "neta", "cli"]);
    reach(true);
    assert!(!d.inspect("cli", "{{.NetworkSettings.Networks.neta.IPAddress}}").is_empty());
    let out = d.ok(&["run", "--rm", "--network", "neta", &img, "nslookup", "client"]);
    assert!(out.contains(&d.inspect("cli", "{{.NetworkSettings.Networks.neta.IPAddress}}")), "{out}");
    d.ok(&["network", "disconnect", "neta", "cli"]);
    reach(false);
    let insp = d.ok(&["network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", "neta"]);
    assert_eq!(insp.trim(), "srv");

    // A network in use cannot go; once free it can, and prune takes the unused one.
    let o = d.run(&["network", "rm", "neta"]);
    assert!(!o.ok() && o.stderr.contains("active endpoints"), "{o}");
    let o = d.run(&["network", "rm", "bridge"]);
    assert!(!o.ok() && o.stderr.contains("pre-defined"), "{o}");
    d.ok(&["rm", "-f", "srv", "cli"]);
    d.ok(&["network", "rm", "neta"]);
    assert!(links_with_prefix(&na).is_empty(), "bridge {na} left after network rm");
    assert_eq!(d.ok(&["network", "prune", "-f"]).split_whitespace().filter(|w| *w == "netb").count(), 1);
    assert!(links_with_prefix(&nb).is_empty());
    stop_and_check_clean(sb, d);
}

#[test]
fn rules_and_addresses_survive_kill9() {
    let Some(mut sb) = sandbox("netrestart") else { return };
    let img;
    let port = free_port();
    let ip;
    {
        let d = Docker::new(&sb);
        img = d.busybox(&sb);
        d.ok(&["run", "-d", "--name", "web", "-p", &format!("{port}:80"), &img, "sh", "-c", &httpd("survivor")]);
        ip = d.inspect("web", "{{.NetworkSettings.Networks.bridge.IPAddress}}");
        assert!(poll(Duration::from_secs(10), || host_get(&format!("http://127.0.0.1:{port}/")).stdout.contains("survivor").then_some(())).is_some());
        std::mem::forget(d); // its clean-up would remove the container
    }
    sb.kill9_berthd();
    assert!(host_get(&format!("http://127.0.0.1:{port}/")).stdout.contains("survivor"), "the port stopped working with berthd gone");
    sb.start_berthd();
    let d = Docker::new(&sb);
    d.track(&d.inspect("web", "{{.Id}}"));
    assert!(host_get(&format!("http://127.0.0.1:{port}/")).stdout.contains("survivor"), "the rules are gone after the restart:\n{}", nft_table(&sb));
    assert_eq!(d.ok(&["port", "web", "80"]).trim(), format!("0.0.0.0:{port}"));
    // The reservation is back: the port is still taken.
    let o = d.run(&["run", "-d", "-p", &format!("{port}:80"), &img, "sleep", "60"]);
    assert!(!o.ok() && o.stderr.contains("already allocated"), "{o}");
    // No address is handed out twice.
    let other = d.ok(&["run", "--rm", &img, "sh", "-c", "ip -4 addr show eth0"]);
    assert!(!other.contains(&format!("inet {ip}/")), "{ip} handed out twice: {other}");
    d.ok(&["stop", "-t", "1", "web"]);
    assert!(!nft_table(&sb).contains(&format!("dport {port}")));
    stop_and_check_clean(sb, d);
}

/// The iptables backend (for hosts without nft): published ports from another host and from
/// 127.0.0.1, isolation between networks, and no chain left once berthd stops.
#[test]
fn iptables_backend() {
    if !common::need_tools("iptables_backend", &["iptables", "iptables-restore"]) {
        return;
    }
    let docker = docker_bin();
    if !common::need_tools("iptables_backend", &["umoci", "skopeo", "docker-registry", "/bin/busybox", "ip", &docker]) {
        return;
    }
    let mut sb = Sandbox::new("netipt");
    sb.berthd_args = vec!["--firewall-backend".into(), "iptables".into()];
    sb.start_registry(None);
    sb.start_berthd();
    let d = Docker::new(&sb);
    let img = d.busybox(&sb);
    let client = ClientHost::new(&sb);
    let port = free_port();
    d.ok(&["run", "-d", "--name", "web", "-p", &format!("{port}:80"), &img, "sh", "-c", &httpd("via-iptables")]);
    let ip = d.inspect("web", "{{.NetworkSettings.Networks.bridge.IPAddress}}");
    let chains = || {
        let o = run_timeout(&mut cmd("iptables", &["-w", "-t", "nat", "-S"]), Duration::from_secs(10)).stdout;
        o.lines().filter(|l| l.contains(&format!("BERTH_{}", sb.bridge.to_ascii_uppercase()))).map(str::to_string).collect::<Vec<_>>()
    };
    assert!(chains().iter().any(|l| l.contains(&format!("--dport {port}"))), "no DNAT rule: {:?}", chains());
    assert!(nft_table(&sb).is_empty(), "the iptables backend made an nft table");
    let got = poll(Duration::from_secs(10), || client.get(&format!("http://{}:{port}/", client.host_ip)).stdout.contains("via-iptables").then_some(()));
    assert!(got.is_some(), "not reachable from another host");
    assert!(host_get(&format!("http://127.0.0.1:{port}/")).stdout.contains("via-iptables"));
    // A user network cannot reach the default bridge's container.
    let na = format!("{}a", sb.bridge);
    d.ok(&["network", "create", "--subnet", &sb.subnet(1), "-o", &format!("com.docker.network.bridge.name={na}"), "neta"]);
    let o = d.run(&["run", "--rm", "--network", "neta", &img, "sh", "-c", &format!("timeout 3 wget -qO- http://{ip}/ && echo REACHED")]);
    assert!(!o.stdout.contains("REACHED"), "isolation: {o}");
    d.ok(&["rm", "-f", "web"]);
    assert!(!chains().iter().any(|l| l.contains(&format!("--dport {port}"))), "rule left: {:?}", chains());
    d.ok(&["network", "rm", "neta"]);
    drop(client);
    let bridge = sb.bridge.clone();
    stop_and_check_clean(sb, d);
    let left: Vec<String> = ["nat", "filter"]
        .iter()
        .flat_map(|t| run_timeout(&mut cmd("iptables", &["-w", "-t", t, "-S"]), Duration::from_secs(10)).stdout.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.contains(&format!("BERTH_{}", bridge.to_ascii_uppercase())))
        .collect();
    assert!(left.is_empty(), "iptables rules left after berthd stopped: {left:?}");
}
