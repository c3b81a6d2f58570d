//! create, start, the exit watcher, stop, kill, restart, pause, rename, remove, wait, and
//! live restore after a berthd restart.

use super::io::{self, Fifos, JsonLog, Stream};
use super::record::{ContainerRecord, State, Status};
use super::redb_tables::{CONTAINERS, NAMES};
use super::{netns, spec, ContainerService, Live};
use crate::errors::{Error, Kind, Result};
use crate::task::Shim;
use bollard_stubs::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Docker's signal names: `KILL`, `SIGKILL`, `9`.
pub fn parse_signal(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    name.parse::<nix::sys::signal::Signal>().map(|s| s as u32).map_err(|_| Error::invalid(format!("Invalid signal: {s}")))
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// Docker-style generated names: adjective_surname.
fn generate_name() -> String {
    const A: &[&str] = &["brave", "calm", "eager", "fond", "happy", "keen", "lucid", "merry", "nifty", "proud", "quiet", "sharp", "swift", "tender", "vivid", "wise", "bold", "clever", "gentle", "jolly"];
    const B: &[&str] = &["hopper", "lovelace", "turing", "curie", "noether", "ritchie", "thompson", "torvalds", "kernighan", "hamilton", "liskov", "knuth", "dijkstra", "shannon", "babbage", "goldberg", "meitner", "franklin", "germain", "wozniak"];
    let mut r = [0u8; 2];
    getrandom::getrandom(&mut r).expect("getrandom");
    format!("{}_{}", A[r[0] as usize % A.len()], B[r[1] as usize % B.len()])
}

impl ContainerService {
    pub fn create(&self, name: Option<&str>, body: ContainerCreateBody) -> Result<(String, Vec<String>)> {
        let image_name = body.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| Error::invalid("Config.Image is required: which image should the container run?"))?;
        let img = self.images.resolve(&image_name).map_err(|e| if e.kind == Kind::NotFound { Error::not_found(format!("No such image: {image_name}")) } else { e })?;
        let icfg: ContainerConfig = self.images.config_json(&img)?.get("config").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
        let mut hc: HostConfig = body.host_config.clone().unwrap_or_default();
        let mut warnings = Vec::new();

        let user_entry = body.entrypoint.clone();
        let entrypoint = match &user_entry {
            Some(e) if e.len() == 1 && e[0].is_empty() => vec![],
            Some(e) if !e.is_empty() => e.clone(),
            _ => icfg.entrypoint.clone().unwrap_or_default(),
        };
        let cmd = match &body.cmd {
            Some(c) if !c.is_empty() => c.clone(),
            // A new entrypoint drops the image's cmd, as docker does.
            _ if user_entry.as_ref().is_some_and(|e| !e.is_empty()) => vec![],
            _ => icfg.cmd.clone().unwrap_or_default(),
        };
        let mut argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if argv.is_empty() {
            return Err(Error::invalid("No command specified"));
        }
        let path = argv.remove(0);

        let mut env: Vec<String> = icfg.env.clone().unwrap_or_default();
        for e in body.env.clone().unwrap_or_default() {
            let key = e.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        let mut labels = icfg.labels.clone().unwrap_or_default();
        labels.extend(body.labels.clone().unwrap_or_default());
        let mut exposed = icfg.exposed_ports.clone().unwrap_or_default();
        for p in body.exposed_ports.clone().unwrap_or_default() {
            if !exposed.contains(&p) {
                exposed.push(p);
            }
        }
        let mut volumes = icfg.volumes.clone().unwrap_or_default();
        for v in body.volumes.clone().unwrap_or_default() {
            if !volumes.contains(&v) {
                volumes.push(v);
            }
        }
        let or = |a: &Option<String>, b: &Option<String>| a.clone().filter(|s| !s.is_empty()).or_else(|| b.clone()).filter(|s| !s.is_empty());
        let config = ContainerConfig {
            hostname: body.hostname.clone().filter(|h| !h.is_empty()),
            domainname: body.domainname.clone(),
            user: or(&body.user, &icfg.user),
            attach_stdin: body.attach_stdin,
            attach_stdout: body.attach_stdout,
            attach_stderr: body.attach_stderr,
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            tty: Some(body.tty.unwrap_or(false)),
            open_stdin: Some(body.open_stdin.unwrap_or(false)),
            stdin_once: Some(body.stdin_once.unwrap_or(false)),
            env: Some(env),
            cmd: (!cmd.is_empty()).then_some(cmd),
            healthcheck: body.healthcheck.clone().or(icfg.healthcheck.clone()),
            image: Some(image_name.clone()),
            volumes: (!volumes.is_empty()).then_some(volumes),
            working_dir: or(&body.working_dir, &icfg.working_dir),
            entrypoint: (!entrypoint.is_empty()).then_some(entrypoint),
            labels: Some(labels),
            stop_signal: or(&body.stop_signal, &icfg.stop_signal),
            stop_timeout: body.stop_timeout,
            shell: icfg.shell.clone(),
            ..Default::default()
        };

        let policy = hc.restart_policy.as_ref().and_then(|p| p.name).map(|n| n.to_string()).unwrap_or_default();
        if hc.auto_remove.unwrap_or(false) && !policy.is_empty() && policy != "no" {
            return Err(Error::invalid("conflicting options: cannot specify both --restart and --rm"));
        }
        let mode = hc.network_mode.clone().unwrap_or_default();
        let mut endpoints: std::collections::BTreeMap<String, bollard_stubs::models::EndpointSettings> = Default::default();
        match mode.as_str() {
            "none" | "host" | "" | "default" | "bridge" => {}
            m if m.starts_with("container:") => {
                self.find(&m["container:".len()..])?;
            }
            other => {
                // Kept by name: the same network named by ID or name is one endpoint.
                hc.network_mode = Some(self.networks.find(other)?.name);
            }
        }
        for (net, cfg) in body.networking_config.clone().and_then(|n| n.endpoints_config).unwrap_or_default() {
            let n = self.networks.find(&net)?;
            let fixed = cfg.ipam_config.as_ref().and_then(|c| c.ipv4_address.as_deref()).is_some_and(|a| !a.is_empty());
            if fixed && n.predefined {
                return Err(Error::invalid("user specified IP address is supported on user defined networks only"));
            }
            if cfg.aliases.as_ref().is_some_and(|a| !a.is_empty()) && n.predefined {
                return Err(Error::invalid("network-scoped alias is supported only for containers in user defined networks"));
            }
            if n.driver != "bridge" && !["none", "host"].contains(&n.name.as_str()) {
                return Err(Error::invalid(format!("network {net} cannot be joined")));
            }
            endpoints.insert(n.name.clone(), cfg);
        }
        if (mode == "host" || mode == "none" || mode.starts_with("container:")) && hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) {
            warnings.push("Published ports are discarded when using host, none or container network mode".into());
            hc.port_bindings = None;
        }
        for s in hc.security_opt.iter().flatten() {
            let k = s.split(['=', ':']).next().unwrap_or("");
            if !["no-new-privileges", "seccomp", "apparmor", "label"].contains(&k) {
                return Err(Error::invalid(format!("Invalid --security-opt: {s:?}")));
            }
        }
        if hc.init.unwrap_or(false) {
            spec::find_init()?;
        }
        if let Some(p) = hc.cgroup_parent.as_deref().filter(|p| !p.is_empty()) {
            crate::config::cgroup_parent(p)?;
        }
        spec::capabilities(&ContainerRecord::placeholder(&hc))?;

        let name = match name.map(|n| n.strip_prefix('/').unwrap_or(n)).filter(|n| !n.is_empty()) {
            Some(n) if !valid_name(n) => return Err(Error::invalid(format!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"))),
            Some(n) => n.to_string(),
            None => generate_name(),
        };
        let id = crate::content::random_hex(32);
        let rec = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: now(),
            image: image_name.clone(),
            image_id: img.id.clone(),
            config,
            host_config: hc,
            path,
            args: argv,
            state: State::default(),
            restart_count: 0,
            shim_address: None,
            endpoints,
            net: None,
            anon_volumes: vec![],
        };
        let mut rec = rec;
        rec.anon_volumes = self.anonymous_volumes(rec.config.volumes.as_deref().unwrap_or(&[]), &mut rec.host_config)?;
        let anon: Vec<String> = rec.anon_volumes.iter().map(|(_, n)| n.clone()).chain(rec.host_config.mounts.iter().flatten().filter_map(|m| m.source.clone())).collect();
        let dir = self.data_dir(&id);
        std::fs::create_dir_all(dir.join("upper"))?;
        std::fs::create_dir_all(dir.join("work"))?;
        self.write_etc_files(&rec, None)?;
        let res = self.store.write(|w| {
            if let Some(other) = w.get::<String>(NAMES, &name)? {
                return Err(Error::conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            w.put(NAMES, &name, &id)?;
            w.put(CONTAINERS, &id, &rec)
        });
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&dir);
            self.volumes.remove_anonymous(&anon);
            return Err(e);
        }
        self.event(&rec, "create");
        Ok((id, warnings))
    }

    /// /etc/hostname, /etc/hosts and /etc/resolv.conf; at start (`net` given) with the
    /// container's addresses, its links and, on a user-defined network, the embedded DNS.
    fn write_etc_files(&self, rec: &ContainerRecord, net: Option<&crate::network::NetState>) -> Result<()> {
        let dir = self.data_dir(&rec.id);
        let hostname = rec.config.hostname.clone().unwrap_or_else(|| rec.short_id().to_string());
        std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
        let hc = &rec.host_config;
        let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
        for h in hc.extra_hosts.iter().flatten() {
            if let Some((name, ip)) = h.split_once(':').or_else(|| h.split_once('=')) {
                hosts.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        let mut embedded_dns = None;
        if let Some(st) = net {
            // --link NAME:ALIAS: the linked container's address on a network both are on.
            for l in hc.links.iter().flatten() {
                let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
                let (name, alias) = (name.trim_start_matches('/'), alias.rsplit('/').next().unwrap_or(alias));
                let other = self.find(name)?;
                let ip = other.net.as_ref().and_then(|o| o.attachments.iter().find(|a| st.attachments.iter().any(|m| m.network_id == a.network_id)).map(|a| a.ip));
                let ip = ip.ok_or_else(|| Error::invalid(format!("cannot link to {name}: it is not running on a network this container joins")))?;
                if alias == other.name {
                    hosts.push_str(&format!("{ip}\t{alias} {}\n", other.short_id()));
                } else {
                    hosts.push_str(&format!("{ip}\t{alias} {} {}\n", other.short_id(), other.name));
                }
            }
            if let Some(a) = st.attachments.first() {
                hosts.push_str(&format!("{}\t{hostname}\n", a.ip));
                if self.networks.find(&a.network_id).map(|n| n.user_defined()).unwrap_or(false) && self.networks.dns_running(&a.network_id) {
                    embedded_dns = Some(a.gateway);
                }
            }
        }
        if hc.network_mode.as_deref() == Some("host") {
            hosts = std::fs::read_to_string("/etc/hosts").unwrap_or(hosts);
        }
        std::fs::write(dir.join("hosts"), hosts)?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut resolv = String::new();
        let mut dns = hc.dns.clone().unwrap_or_default();
        // Containers on user-defined networks ask berthd's DNS server on their gateway,
        // which forwards what it does not know to the host's resolvers (`--dns` bypasses it).
        if let Some(gw) = embedded_dns.filter(|_| dns.is_empty()) {
            dns = vec![gw.to_string()];
        }
        if dns.is_empty() {
            // Loopback resolvers of the host are not reachable from the container's namespace.
            let ok: Vec<&str> = host_resolv.lines().filter(|l| l.starts_with("nameserver") && !l.contains(" 127.") && !l.contains(" ::1")).collect();
            if ok.is_empty() && hc.network_mode.as_deref() != Some("host") {
                resolv.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
            } else if hc.network_mode.as_deref() == Some("host") {
                resolv = host_resolv.clone();
            } else {
                for l in ok {
                    resolv.push_str(l);
                    resolv.push('\n');
                }
            }
        } else {
            for d in dns {
                resolv.push_str(&format!("nameserver {d}\n"));
            }
        }
        if let Some(s) = hc.dns_search.clone().filter(|s| !s.is_empty()) {
            resolv.push_str(&format!("search {}\n", s.join(" ")));
        } else if let Some(l) = host_resolv.lines().find(|l| l.starts_with("search ")) {
            resolv.push_str(l);
            resolv.push('\n');
        }
        if let Some(o) = hc.dns_options.clone().filter(|s| !s.is_empty()) {
            resolv.push_str(&format!("options {}\n", o.join(" ")));
        }
        std::fs::write(dir.join("resolv.conf"), resolv)?;
        Ok(())
    }

    pub fn event(&self, rec: &ContainerRecord, action: &str) {
        let mut attrs: HashMap<String, String> = rec.config.labels.clone().unwrap_or_default();
        attrs.insert("image".into(), rec.image.clone());
        attrs.insert("name".into(), rec.name.clone());
        if action == "die" {
            attrs.insert("exitCode".into(), rec.state.exit_code.to_string());
        }
        self.events.publish("container", action, &rec.id, attrs);
    }

    /// Start; false when it was already running (HTTP 304).
    pub async fn start(self: &Arc<Self>, name: &str) -> Result<bool> {
        let id = self.find(name)?.id;
        let lock = self.lock_for(&id);
        let _g = lock.lock().await;
        let rec = self.get(&id)?;
        if rec.state.status.is_live() {
            return Ok(false);
        }
        if rec.state.status == Status::Removing {
            return Err(Error::conflict(format!("container {} is marked for removal and cannot be started", rec.name)));
        }
        let svc = self.clone();
        tokio::task::spawn_blocking(move || svc.start_blocking(rec)).await.map_err(|e| Error::internal(e.to_string()))??;
        Ok(true)
    }

    fn rootfs_dir(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("rootfs")
    }

    /// Undo what start set up on the host: rootfs mount, network namespace, fifos.
    fn cleanup_run(&self, id: &str) {
        let rootfs = self.rootfs_dir(id);
        if crate::snapshot::is_mountpoint(&rootfs) {
            let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        }
        self.networks.detach(id);
        if self.get(id).is_ok_and(|r| r.net.is_some()) {
            let _ = self.update(id, |r| r.net = None);
        }
        netns::remove(&self.exec_root, id);
        for f in ["init-stdin", "init-stdout", "init-stderr"] {
            let _ = std::fs::remove_file(self.run_dir(id).join(f));
        }
    }

    fn start_blocking(self: &Arc<Self>, rec: ContainerRecord) -> Result<()> {
        let id = rec.id.clone();
        let res = self.start_inner(&rec);
        if let Err(e) = &res {
            self.cleanup_run(&id);
            let msg = e.message.clone();
            let code = if msg.contains("executable file not found") || msg.contains("no such file or directory") || msg.contains("No such file") {
                127
            } else if msg.contains("permission denied") || msg.contains("Permission denied") {
                126
            } else {
                128
            };
            if let Ok(r) = self.update(&id, |r| {
                r.state.error = msg.clone();
                r.state.exit_code = code;
                if r.state.status != Status::Created {
                    r.state.status = Status::Exited;
                }
                r.shim_address = None;
            }) {
                self.notify();
                // Docker removes an --rm container whose start failed.
                if r.host_config.auto_remove.unwrap_or(false) {
                    let svc = self.clone();
                    self.rt.spawn(async move {
                        let _ = svc.remove(&id, true, true).await;
                    });
                }
            }
        }
        res
    }

    fn start_inner(self: &Arc<Self>, rec: &ContainerRecord) -> Result<()> {
        let id = &rec.id;
        let run = self.run_dir(id);
        std::fs::create_dir_all(&run)?;
        self.cleanup_run(id);
        let img = self.images.get_record(&rec.image_id).map_err(|_| Error::not_found(format!("image {} of container {} is gone", rec.image_id, rec.name)))?;
        let top = img.chain_ids.last().ok_or_else(|| Error::invalid("the image has no layers"))?;
        let lowers = self.images.snapshots.lowers(&self.store, top)?;
        let data = self.data_dir(id);
        let rootfs = self.rootfs_dir(id);
        std::fs::create_dir_all(&rootfs)?;
        let lower = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        let opts = format!("lowerdir={lower},upperdir={},workdir={}", data.join("upper").display(), data.join("work").display());
        nix::mount::mount(Some("overlay"), &rootfs, Some("overlay"), nix::mount::MsFlags::empty(), Some(opts.as_str())).map_err(|e| Error::internal(format!("mounting the container's root filesystem: {e}")))?;

        let hc = &rec.host_config;
        let user = spec::resolve_user(&rootfs, rec.config.user.as_deref().unwrap_or(""), hc.group_add.as_deref().unwrap_or(&[]))?;
        let mode = rec.network_mode();
        let netns = match mode.as_str() {
            "host" => None,
            m if m.starts_with("container:") => {
                let other = self.find(&m["container:".len()..])?;
                if other.state.status != Status::Running {
                    return Err(Error::conflict(format!("cannot join network of a non running container: {}", other.name)));
                }
                Some(PathBuf::from(format!("/proc/{}/ns/net", other.state.pid)))
            }
            _ => Some(netns::create(&self.exec_root, id)?),
        };
        if let Some(ns) = netns.as_ref().filter(|_| !mode.starts_with("container:")) {
            let exposed = rec.config.exposed_ports.clone().unwrap_or_default();
            let req = crate::network::AttachRequest {
                id,
                name: &rec.name,
                netns: ns,
                networks: rec.bridge_networks(),
                ports: crate::network::ports::wanted(hc, &exposed)?,
            };
            let st = self.networks.attach(&req)?;
            self.write_etc_files(rec, Some(&st))?;
            self.update(id, |r| r.net = Some(st))?;
        }
        let mounts = self.volume_mounts(rec, &rootfs)?;
        let init = if hc.init.unwrap_or(false) { Some(spec::find_init()?) } else { None };
        let paths = spec::Paths { rootfs: rootfs.clone(), hostname: data.join("hostname"), hosts: data.join("hosts"), resolv_conf: data.join("resolv.conf"), netns, mounts, init, cgroup: self.cgroup_path(rec) };
        let spec = spec::build(rec, &paths, &user)?;
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::write(run.join("config.json"), json)?;

        let tty = rec.tty();
        let fifos = Fifos::create(&run, "init", !tty)?;
        let address = Shim::launch(id, &run, &self.exec_root)?;
        let shim = Arc::new(Shim::connect(id, &address)?);
        self.update(id, |r| r.shim_address = Some(address.clone()))?;
        let live = self.attach_io(rec, shim.clone(), &fifos);
        let open_stdin = rec.config.open_stdin.unwrap_or(false);
        let stdin = if open_stdin { fifos.stdin.display().to_string() } else { String::new() };
        let stderr = if tty { String::new() } else { fifos.stderr.display().to_string() };
        let created = shim.create(&run, tty, &stdin, &fifos.stdout.display().to_string(), &stderr);
        let started = created.and_then(|_| shim.start(""));
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                let _ = live.exited.send(true);
                let _ = shim.delete("");
                shim.shutdown();
                return Err(e);
            }
        };
        self.live.lock().unwrap().insert(id.clone(), live);
        let rec = self.update(id, |r| {
            r.state = State { status: Status::Running, pid, started_at: Some(now()), manually_stopped: false, ..Default::default() };
        })?;
        self.event(&rec, "start");
        let svc = self.clone();
        let idc = id.clone();
        std::thread::Builder::new().name("wait".into()).spawn(move || svc.watch_exit(idc, shim)).map_err(|e| Error::internal(e.to_string()))?;
        Ok(())
    }

    /// Log and output pumps for the init process.
    fn attach_io(&self, rec: &ContainerRecord, shim: Arc<Shim>, fifos: &Fifos) -> Arc<Live> {
        let (max_size, max_files) = log_opts(&rec.host_config);
        let log = JsonLog::open(self.log_path(&rec.id), max_size, max_files).ok().map(|l| Arc::new(Mutex::new(l)));
        let output = self.output(&rec.id);
        let (exited, done) = tokio::sync::watch::channel(false);
        let mut streams = vec![(fifos.stdout.clone(), Stream::Stdout)];
        if !rec.tty() {
            streams.push((fifos.stderr.clone(), Stream::Stderr));
        }
        for (path, stream) in streams {
            let (log, out, done) = (log.clone(), output.clone(), done.clone());
            self.rt.spawn(async move {
                io::pump(path, stream, log, out.clone(), done).await;
                // An empty stdin-tagged chunk marks the end of one output stream.
                let _ = out.send((Stream::Stdin, bytes::Bytes::new()));
            });
        }
        Arc::new(Live { shim, output, stdin: rec.config.open_stdin.unwrap_or(false).then(|| fifos.stdin.clone()), log, exited })
    }

    /// Runs on its own thread for each running container: waits for the exit, records it,
    /// cleans up, then applies the restart policy or --rm.
    fn watch_exit(self: Arc<Self>, id: String, shim: Arc<Shim>) {
        let (code, secs, nanos) = match shim.wait("") {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(container = %id, "wait: {e}");
                (255, 0, 0)
            }
        };
        if let Some(l) = self.live.lock().unwrap().remove(&id) {
            let _ = l.exited.send(true);
        }
        // The runtime's delete removes the cgroups and its state; processes of the container
        // that are still dying can make that fail for a moment, so it is retried.
        for attempt in 0..10 {
            match shim.delete("") {
                Ok(_) => break,
                Err(e) if attempt == 9 => tracing::warn!(container = %id, "deleting the task: {e}"),
                Err(e) => {
                    tracing::debug!(container = %id, "deleting the task (retrying): {e}");
                    std::thread::sleep(Duration::from_millis(50 << attempt.min(4)));
                }
            }
        }
        shim.shutdown();
        self.cleanup_run(&id);
        let finished = if secs > 0 {
            chrono::DateTime::from_timestamp(secs, nanos as u32).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)).unwrap_or_else(now)
        } else {
            now()
        };
        let rec = match self.update(&id, |r| {
            r.state.status = Status::Exited;
            r.state.exit_code = code as i64;
            r.state.finished_at = Some(finished.clone());
            r.state.pid = 0;
            r.shim_address = None;
        }) {
            Ok(r) => r,
            Err(_) => return, // removed meanwhile
        };
        self.event(&rec, "die");
        self.notify();
        self.after_exit(rec);
    }

    fn after_exit(self: &Arc<Self>, rec: ContainerRecord) {
        let policy = rec.host_config.restart_policy.clone().unwrap_or_default();
        let name = policy.name.map(|n| n.to_string()).unwrap_or_default();
        let max = policy.maximum_retry_count.unwrap_or(0);
        let restart = match name.as_str() {
            "always" => !rec.state.manually_stopped,
            "unless-stopped" => !rec.state.manually_stopped,
            "on-failure" => rec.state.exit_code != 0 && !rec.state.manually_stopped && (max == 0 || rec.restart_count < max),
            _ => false,
        };
        if restart {
            let svc = self.clone();
            let id = rec.id.clone();
            // Docker's back-off: 100 ms doubling, capped at a minute.
            let delay = Duration::from_millis((100u64 << rec.restart_count.clamp(0, 10) as u64).min(60_000));
            let _ = self.update(&id, |r| r.state.status = Status::Restarting);
            self.rt.spawn(async move {
                tokio::time::sleep(delay).await;
                match svc.get(&id) {
                    Ok(r) if r.state.status == Status::Restarting => {
                        let _ = svc.update(&id, |r| {
                            r.restart_count += 1;
                            r.state.status = Status::Exited;
                        });
                        if let Err(e) = svc.start(&id).await {
                            tracing::warn!(container = %id, "restart: {e}");
                        }
                    }
                    _ => {}
                }
            });
        } else if rec.host_config.auto_remove.unwrap_or(false) {
            let svc = self.clone();
            self.rt.spawn(async move {
                let _ = svc.remove(&rec.id, true, true).await;
            });
        }
    }

    async fn wait_until(&self, id: &str, mut done: impl FnMut(Option<&ContainerRecord>) -> bool, timeout: Option<Duration>) -> Result<Option<ContainerRecord>> {
        let mut rx = self.changes.subscribe();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let rec = self.store.get::<ContainerRecord>(CONTAINERS, id)?;
            if done(rec.as_ref()) {
                return Ok(rec);
            }
            let changed = rx.changed();
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, changed).await.is_err() {
                        return Ok(rec);
                    }
                }
                None => {
                    if changed.await.is_err() {
                        return Ok(rec);
                    }
                }
            }
        }
    }

    /// `stop`: the stop signal, then SIGKILL after the timeout. False if it was not running.
    pub async fn stop(self: &Arc<Self>, name: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<bool> {
        let rec = self.find(name)?;
        let lock = self.lock_for(&rec.id);
        let _g = lock.lock().await;
        self.stop_locked(&rec.id, timeout, signal).await
    }

    async fn stop_locked(self: &Arc<Self>, id: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<bool> {
        let rec = self.update(id, |r| r.state.manually_stopped = true)?;
        if rec.state.status == Status::Restarting {
            self.update(id, |r| r.state.status = Status::Exited)?;
            self.notify();
            return Ok(true);
        }
        let Some(live) = self.live(id).filter(|_| rec.state.status.is_live()) else { return Ok(false) };
        let sig = parse_signal(signal.or(rec.config.stop_signal.as_deref()).unwrap_or("SIGTERM"))?;
        let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let shim = live.shim.clone();
        let paused = rec.state.status == Status::Paused;
        let _ = tokio::task::spawn_blocking(move || {
            let r = shim.kill("", sig, false);
            if paused {
                let _ = shim.resume();
            }
            r
        })
        .await;
        let exited = |r: Option<&ContainerRecord>| r.is_none_or(|r| !r.state.status.is_live());
        let t = if timeout < 0 { None } else { Some(Duration::from_secs(timeout as u64)) };
        let r = self.wait_until(id, exited, t).await?;
        if r.as_ref().is_some_and(|r| r.state.status.is_live()) {
            let shim = live.shim.clone();
            let _ = tokio::task::spawn_blocking(move || shim.kill("", 9, true)).await;
            self.wait_until(id, exited, Some(Duration::from_secs(30))).await?;
        }
        if let Ok(r) = self.get(id) {
            self.event(&r, "stop");
        }
        Ok(true)
    }

    pub async fn kill(self: &Arc<Self>, name: &str, signal: Option<&str>) -> Result<()> {
        let rec = self.find(name)?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))?;
        let live = self.live(&rec.id).filter(|_| rec.state.status.is_live()).ok_or_else(|| Error::conflict(format!("Container {} is not running", rec.id)))?;
        if sig == 9 || sig == 15 {
            self.update(&rec.id, |r| r.state.manually_stopped = true)?;
        }
        let shim = live.shim.clone();
        tokio::task::spawn_blocking(move || shim.kill("", sig, sig == 9)).await.map_err(|e| Error::internal(e.to_string()))??;
        let mut attrs = HashMap::new();
        attrs.insert("name".to_string(), rec.name.clone());
        attrs.insert("signal".to_string(), sig.to_string());
        self.events.publish("container", "kill", &rec.id, attrs);
        Ok(())
    }

    pub async fn restart(self: &Arc<Self>, name: &str, timeout: Option<i64>) -> Result<()> {
        let id = self.find(name)?.id;
        {
            let lock = self.lock_for(&id);
            let _g = lock.lock().await;
            self.stop_locked(&id, timeout, None).await?;
        }
        self.start(&id).await?;
        if let Ok(r) = self.get(&id) {
            self.event(&r, "restart");
        }
        Ok(())
    }

    pub async fn pause(self: &Arc<Self>, name: &str, pause: bool) -> Result<()> {
        let rec = self.find(name)?;
        let lock = self.lock_for(&rec.id);
        let _g = lock.lock().await;
        let rec = self.get(&rec.id)?;
        let want = if pause { Status::Running } else { Status::Paused };
        if rec.state.status != want {
            return Err(Error::conflict(if pause {
                format!("Container {} is not running", rec.id)
            } else {
                format!("Container {} is not paused", rec.id)
            }));
        }
        let live = self.live(&rec.id).ok_or_else(|| Error::conflict(format!("Container {} is not running", rec.id)))?;
        let shim = live.shim.clone();
        tokio::task::spawn_blocking(move || if pause { shim.pause() } else { shim.resume() }).await.map_err(|e| Error::internal(e.to_string()))??;
        let rec = self.update(&rec.id, |r| r.state.status = if pause { Status::Paused } else { Status::Running })?;
        self.event(&rec, if pause { "pause" } else { "unpause" });
        Ok(())
    }

    pub fn rename(&self, name: &str, new: &str) -> Result<()> {
        let rec = self.find(name)?;
        let new = new.strip_prefix('/').unwrap_or(new);
        if !valid_name(new) {
            return Err(Error::invalid(format!("Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
        }
        if new == rec.name {
            return Err(Error::invalid("Renaming a container with the same name as its current name"));
        }
        self.store.write(|w| {
            if let Some(other) = w.get::<String>(NAMES, new)? {
                return Err(Error::conflict(format!("Conflict. The container name \"/{new}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name.")));
            }
            w.delete(NAMES, &rec.name)?;
            w.put(NAMES, new, &rec.id)?;
            let mut r: ContainerRecord = w.get(CONTAINERS, &rec.id)?.ok_or_else(|| Error::not_found("container vanished"))?;
            r.name = new.to_string();
            w.put(CONTAINERS, &rec.id, &r)
        })?;
        let r = self.get(&rec.id)?;
        self.event(&r, "rename");
        Ok(())
    }

    pub async fn remove(self: &Arc<Self>, name: &str, force: bool, volumes: bool) -> Result<()> {
        let id = self.find(name)?.id;
        let lock = self.lock_for(&id);
        let _g = lock.lock().await;
        let rec = self.get(&id)?;
        if rec.state.status.is_live() || rec.state.status == Status::Restarting {
            if !force {
                return Err(Error::conflict(format!(
                    "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                    rec.name,
                    rec.state.status.as_str()
                )));
            }
            if let Some(live) = self.live(&id) {
                let shim = live.shim.clone();
                let _ = self.update(&id, |r| r.state.manually_stopped = true);
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = shim.resume();
                    shim.kill("", 9, true)
                })
                .await;
                self.wait_until(&id, |r| r.is_none_or(|r| !r.state.status.is_live()), Some(Duration::from_secs(30))).await?;
            }
        }
        let code = self.get(&id).map(|r| r.state.exit_code).unwrap_or(rec.state.exit_code);
        {
            let mut codes = self.removed_codes.lock().unwrap();
            if codes.len() > 10_000 {
                codes.clear();
            }
            codes.insert(id.clone(), code);
        }
        self.store.write(|w| {
            w.delete(NAMES, &rec.name)?;
            w.delete(CONTAINERS, &id)?;
            Ok(())
        })?;
        tokio::task::block_in_place(|| self.cleanup_run(&id)); // netlink and nft work
        // The directories go to the trash at once and are deleted after the reply (an upper
        // dir can be large); whatever a crash leaves there goes at the next start.
        let trash: Vec<_> = [self.run_dir(&id), self.data_dir(&id)].into_iter().filter_map(|d| trash(&d)).collect();
        self.outputs.lock().unwrap().remove(&id);
        self.locks.lock().unwrap().remove(&id);
        // rm -v: its anonymous volumes, never named ones.
        if volumes {
            let anon: Vec<String> = rec.anon_volumes.iter().map(|(_, n)| n.clone()).collect();
            let vols = self.volumes.clone();
            let _ = tokio::task::spawn_blocking(move || vols.remove_anonymous(&anon)).await;
        }
        self.event(&rec, "destroy");
        self.notify();
        if !trash.is_empty() {
            tokio::task::spawn_blocking(move || {
                for d in trash {
                    let _ = std::fs::remove_dir_all(d);
                }
            });
        }
        Ok(())
    }

    /// Register a wait now (before the response headers go out), for `wait_with` later:
    /// `not-running` (default), `next-exit` (an exit after this moment) or `removed`.
    pub fn wait_ticket(&self, name: &str, condition: &str) -> Result<WaitTicket> {
        if !["", "not-running", "next-exit", "removed"].contains(&condition) {
            return Err(Error::invalid(format!("invalid condition: {condition:?}")));
        }
        let rec = self.find(name)?;
        Ok(WaitTicket { id: rec.id, condition: condition.to_string(), first: rec.state.finished_at, last: rec.state.exit_code })
    }

    pub async fn wait_with(&self, t: WaitTicket) -> Result<i64> {
        let last = std::sync::atomic::AtomicI64::new(t.last);
        let seen = |r: Option<&ContainerRecord>| {
            if let Some(r) = r {
                last.store(r.state.exit_code, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let r = match t.condition.as_str() {
            "next-exit" => {
                self.wait_until(&t.id, |r| {
                    seen(r);
                    r.is_none_or(|r| r.state.finished_at != t.first && !r.state.status.is_live())
                }, None)
                .await?
            }
            "removed" => {
                self.wait_until(&t.id, |r| {
                    seen(r);
                    r.is_none()
                }, None)
                .await?
            }
            _ => {
                self.wait_until(&t.id, |r| {
                    seen(r);
                    r.is_none_or(|r| !r.state.status.is_live() && r.state.status != Status::Restarting)
                }, None)
                .await?
            }
        };
        Ok(match r {
            Some(r) => r.state.exit_code,
            // Removed: its last exit code, even if this waiter never saw the exited record.
            None => self.removed_codes.lock().unwrap().get(&t.id).copied().unwrap_or_else(|| last.load(std::sync::atomic::Ordering::Relaxed)),
        })
    }

    /// Start-up: reconnect to the shims of containers that were running, record the exits
    /// that happened while berthd was away, then restart what the policies say.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        let _ = std::fs::create_dir_all(self.exec_root.join("netns"));
        for root in [&self.exec_root, &self.data_root] {
            let _ = std::fs::remove_dir_all(root.join(TRASH));
        }
        for (id, rec) in self.store.list::<ContainerRecord>(CONTAINERS)? {
            if matches!(rec.state.status, Status::Restarting | Status::Removing) {
                self.update(&id, |r| r.state.status = Status::Exited)?;
                continue;
            }
            if !rec.state.status.is_live() {
                continue;
            }
            let svc = self.clone();
            let rec2 = rec.clone();
            let res = tokio::task::spawn_blocking(move || svc.reconnect(rec2)).await.map_err(|e| Error::internal(e.to_string()))?;
            if let Err(e) = res {
                tracing::warn!(container = %id, "could not reconnect to its shim ({e}); marking it exited");
                tokio::task::block_in_place(|| self.cleanup_run(&id)); // netlink and nft work
                self.update(&id, |r| {
                    r.state.status = Status::Exited;
                    r.state.exit_code = 255;
                    r.state.finished_at = Some(now());
                    r.state.pid = 0;
                    r.shim_address = None;
                })?;
            }
        }
        let svc = self.clone();
        tokio::task::spawn_blocking(move || {
            let running = |id: &str| svc.get(id).map(|r| r.state.status.is_live()).unwrap_or(false);
            svc.networks.recover(&running)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        for (id, rec) in self.store.list::<ContainerRecord>(CONTAINERS)? {
            let policy = rec.host_config.restart_policy.as_ref().and_then(|p| p.name).map(|n| n.to_string()).unwrap_or_default();
            if !rec.state.status.is_live() && (policy == "always" || policy == "unless-stopped") && !rec.state.manually_stopped {
                if let Err(e) = self.start(&id).await {
                    tracing::warn!(container = %id, "restart on daemon start: {e}");
                }
            }
        }
        Ok(())
    }

    fn reconnect(self: &Arc<Self>, rec: ContainerRecord) -> Result<()> {
        let address = rec.shim_address.clone().ok_or_else(|| Error::internal("no shim address recorded"))?;
        let shim = Arc::new(Shim::connect(&rec.id, &address)?);
        let st = shim.state("")?;
        let run = self.run_dir(&rec.id);
        let fifos = Fifos { stdin: run.join("init-stdin"), stdout: run.join("init-stdout"), stderr: run.join("init-stderr") };
        let status = st.status.enum_value_or_default();
        use containerd_shim_protos::api::Status as S;
        if matches!(status, S::RUNNING | S::PAUSED | S::PAUSING) {
            if let Some(st) = &rec.net {
                self.networks.restore(&rec.id, st);
            }
            let live = self.attach_io(&rec, shim.clone(), &fifos);
            self.live.lock().unwrap().insert(rec.id.clone(), live);
            if status != S::RUNNING {
                self.update(&rec.id, |r| r.state.status = Status::Paused)?;
            }
            tracing::info!(container = %rec.id, pid = st.pid, "reconnected to running container");
        }
        // Exited meanwhile or running: the watcher records the exit either way.
        let svc = self.clone();
        let id = rec.id.clone();
        std::thread::Builder::new().name("wait".into()).spawn(move || svc.watch_exit(id, shim)).map_err(|e| Error::internal(e.to_string()))?;
        Ok(())
    }

    /// OOM events from the shims.
    pub fn oom(&self, id: &str) {
        if let Ok(r) = self.update(id, |r| r.state.oom_killed = true) {
            self.event(&r, "oom");
        }
    }
}

/// Beside `containers` under each root: directories of removed containers, being deleted.
const TRASH: &str = "containers-removed";

/// Moves a removed container's directory to the trash (same filesystem: a rename); None when
/// there was nothing to move.
fn trash(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let root = dir.parent()?.parent()?.join(TRASH);
    let _ = std::fs::create_dir_all(&root);
    let to = root.join(dir.file_name()?);
    match std::fs::rename(dir, &to) {
        Ok(()) => Some(to),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => {
            // Not movable (another filesystem?): delete in place, as before.
            let _ = std::fs::remove_dir_all(dir);
            None
        }
    }
}

pub struct WaitTicket {
    id: String,
    condition: String,
    first: Option<String>,
    last: i64,
}

fn log_opts(hc: &HostConfig) -> (Option<u64>, u32) {
    let cfg = hc.log_config.as_ref().and_then(|l| l.config.clone()).unwrap_or_default();
    let max_size = cfg.get("max-size").and_then(|s| spec::parse_size(s));
    let max_files = cfg.get("max-file").and_then(|s| s.parse().ok()).unwrap_or(1);
    (max_size, max_files)
}

pub fn log_files(hc: &HostConfig) -> u32 {
    log_opts(hc).1
}

impl ContainerRecord {
    /// A record carrying only a host config, to validate capability flags at create.
    pub fn placeholder(hc: &HostConfig) -> ContainerRecord {
        ContainerRecord {
            id: "0".repeat(64),
            name: String::new(),
            created: String::new(),
            image: String::new(),
            image_id: String::new(),
            config: ContainerConfig::default(),
            host_config: hc.clone(),
            path: String::new(),
            args: vec![],
            state: State::default(),
            restart_count: 0,
            shim_address: None,
            endpoints: Default::default(),
            net: None,
            anon_volumes: vec![],
        }
    }
}
