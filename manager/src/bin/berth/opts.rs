//! The flags of `run` and `create`, and their translation into the Engine API's create
//! body (`ContainerCreateBody`), with docker's syntax, defaults and error messages.
//!
//! Parsing is pure: the environment lookup and the working directory are passed in, so
//! the translation is unit-tested without a daemon.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use bollard_stubs::models::{
    ContainerCreateBody, DeviceMapping, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig,
    HostConfigCgroupnsModeEnum, HostConfigLogConfig, Mount, MountBindOptions, MountBindOptionsPropagationEnum,
    MountTmpfsOptions, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig, NetworkingConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use crate::units;

/// A flag value or a combination of flags refused before the daemon is called (exit 125).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// A value the flag cannot take (docker: `invalid argument "V" for "FLAG" flag: WHY`).
    Value { flag: &'static str, value: String, why: String },
    /// Flags that parse but make no sense, alone or together.
    Invalid(String),
}

impl FlagError {
    fn value(flag: &'static str, value: &str, why: impl Into<String>) -> FlagError {
        FlagError::Value {
            flag,
            value: value.to_string(),
            why: why.into(),
        }
    }

    /// The text docker prints for `command` (run, create).
    pub fn render(&self, command: &str) -> String {
        match self {
            FlagError::Value { flag, value, why } => format!(
                "invalid argument \"{value}\" for \"{flag}\" flag: {why}\n\nUsage:  berth {command} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth {command} --help' for more information"
            ),
            FlagError::Invalid(msg) => format!("berth: {msg}\n\nRun 'berth {command} --help' for more information"),
        }
    }
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            FlagError::Value { flag, value, why } => write!(f, "invalid argument \"{value}\" for \"{flag}\" flag: {why}"),
            FlagError::Invalid(msg) => f.write_str(msg),
        }
    }
}

/// `--pull`: when to pull the image before creating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Missing,
    Always,
    Never,
}

/// Everything a create call needs besides the body.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    pub body: ContainerCreateBody,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub pull: PullPolicy,
    pub cidfile: Option<String>,
    pub quiet: bool,
}

/// Looks up a variable of the client's environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What parsing may look at outside the flags.
pub struct ParseEnv<'a> {
    /// The client's environment (`-e NAME` and env files take values from it).
    pub lookup: EnvLookup<'a>,
    /// The client's working directory (relative bind sources start here).
    pub cwd: &'a Path,
}

impl ParseEnv<'_> {
    /// The real process environment and working directory.
    pub fn with_process<R>(f: impl FnOnce(&ParseEnv) -> R) -> R {
        let lookup = |k: &str| std::env::var(k).ok();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        f(&ParseEnv { lookup: &lookup, cwd: &cwd })
    }
}

/// The flags shared by `run` and `create` (docker's names, short forms and defaults).
/// Boolean flags also take `=true`/`=false`, as docker's do.
#[derive(Args, Debug, Clone, Default)]
pub struct CreateFlags {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight", value_name = "UINT16")]
    pub blkio_weight: Option<u16>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "STRING")]
    pub cgroup_parent: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long = "cgroupns", value_name = "STRING")]
    pub cgroupns: Option<String>,
    /// Write the container ID to the file
    #[arg(long = "cidfile", value_name = "FILE")]
    pub cidfile: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "INT")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "INT")]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "INT")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long = "cpus", value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "STRING")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "STRING")]
    pub cpuset_mems: Option<String>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMISSIONS]])
    #[arg(long = "device", value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule", value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", visible_alias = "dns-opt", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Container NIS domain name
    #[arg(long = "domainname", value_name = "STRING")]
    pub domainname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long = "entrypoint", value_name = "STRING")]
    pub entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long = "expose", value_name = "PORT")]
    pub expose: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "STRING")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval", value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "INT")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long = "health-start-period", value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname", value_name = "STRING")]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long = "init", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub init: Option<bool>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub interactive: bool,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip", value_name = "IP")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long = "ip6", value_name = "IP")]
    pub ip6: Option<String>,
    /// IPC mode to use
    #[arg(long = "ipc", value_name = "STRING")]
    pub ipc: Option<String>,
    /// Container isolation technology (accepted and ignored: Linux has only the default)
    #[arg(long = "isolation", value_name = "STRING")]
    pub isolation: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_file: Vec<String>,
    /// Add link to another container (NAME[:ALIAS])
    #[arg(long = "link", value_name = "LINK")]
    pub link: Vec<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip", value_name = "IP")]
    pub link_local_ip: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "STRING")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "STRING")]
    pub mac_address: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory", value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long = "memory-swappiness", value_name = "INT", default_value_t = -1, allow_hyphen_values = true)]
    pub memory_swappiness: i64,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount", value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Assign a name to the container
    #[arg(long = "name", value_name = "STRING")]
    pub name: Option<String>,
    /// Connect a container to a network
    #[arg(long = "network", visible_alias = "net", value_name = "NETWORK")]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", visible_alias = "net-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub no_healthcheck: bool,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", value_name = "INT", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// PID namespace to use
    #[arg(long = "pid", value_name = "STRING")]
    pub pid: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "INT", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform", value_name = "STRING")]
    pub platform: Option<String>,
    /// Give extended privileges to this container
    #[arg(long = "privileged", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub privileged: bool,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CONTAINER[/PROTO]")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub publish_all: bool,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long = "pull", value_name = "STRING", default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub quiet: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub read_only: bool,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart", value_name = "STRING", default_value = "no")]
    pub restart: String,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long = "rm", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub rm: bool,
    /// Runtime to use for this container
    #[arg(long = "runtime", value_name = "STRING")]
    pub runtime: Option<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "OPTION")]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "STRING")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "INT", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Storage driver options for the container
    #[arg(long = "storage-opt", value_name = "KEY=VALUE")]
    pub storage_opt: Vec<String>,
    /// Sysctl options
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs", value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub tty: bool,
    /// Ulimit options (NAME=SOFT[:HARD])
    #[arg(long = "ulimit", value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user", value_name = "STRING")]
    pub user: Option<String>,
    /// User namespace to use
    #[arg(long = "userns", value_name = "STRING")]
    pub userns: Option<String>,
    /// UTS namespace to use
    #[arg(long = "uts", value_name = "STRING")]
    pub uts: Option<String>,
    /// Bind mount a volume ([HOST-DIR|NAME:]CONTAINER-DIR[:OPTIONS])
    #[arg(short = 'v', long = "volume", value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// Optional volume driver for the container
    #[arg(long = "volume-driver", value_name = "STRING")]
    pub volume_driver: Option<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "CONTAINER")]
    pub volumes_from: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "STRING")]
    pub workdir: Option<String>,
}

impl CreateFlags {
    /// Translates the flags, the image and its command into a create request, as docker's
    /// CLI does (`parse` in docker's container/opts.go).
    pub fn build(&self, image: &str, cmd: &[String], env: &ParseEnv) -> Result<CreateSpec, FlagError> {
        // Flag values first (docker refuses these while parsing the command line).
        let attach = self
            .attach
            .iter()
            .map(|a| match a.to_lowercase().as_str() {
                s @ ("stdin" | "stdout" | "stderr") => Ok(s.to_string()),
                _ => Err(FlagError::value("-a, --attach", a, "valid streams are STDIN, STDOUT and STDERR")),
            })
            .collect::<Result<Vec<String>, FlagError>>()?;
        let mut extra_hosts = Vec::new();
        for h in &self.add_host {
            extra_hosts.push(validate_extra_host(h).map_err(|e| FlagError::value("--add-host", h, e))?);
        }
        for d in &self.dns {
            if d.trim().parse::<IpAddr>().is_err() {
                return Err(FlagError::value("--dns", d, format!("IP address is not correctly formatted: {d}")));
            }
        }
        let mut dns_search = Vec::new();
        for d in &self.dns_search {
            dns_search.push(validate_dns_search(d).map_err(|e| FlagError::value("--dns-search", d, e))?);
        }
        let mut cli_env = Vec::new();
        for e in &self.env {
            cli_env.push(validate_env(e, env.lookup).map_err(|why| FlagError::value("-e, --env", e, why))?);
        }
        for l in &self.label {
            let key = l.split_once('=').map(|(k, _)| k).unwrap_or(l);
            if key.trim().is_empty() {
                return Err(FlagError::value("-l, --label", l, format!("invalid label '{l}': empty name")));
            }
        }
        for l in &self.link {
            if l.split(':').count() > 2 {
                return Err(FlagError::value("--link", l, format!("bad format for links: {l}")));
            }
        }
        let memory = mem_flag("-m, --memory", self.memory.as_deref())?;
        let memory_reservation = mem_flag("--memory-reservation", self.memory_reservation.as_deref())?;
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => Some(-1),
            other => mem_flag("--memory-swap", other)?,
        };
        let shm_size = mem_flag("--shm-size", self.shm_size.as_deref())?;
        let nano_cpus = match &self.cpus {
            Some(c) => Some(parse_cpus(c).map_err(|why| FlagError::value("--cpus", c, why))?),
            None => None,
        };
        let mut mounts = Vec::new();
        for m in &self.mount {
            mounts.push(parse_mount(m, env.cwd).map_err(|why| FlagError::value("--mount", m, why))?);
        }
        let mut ulimits: Vec<ResourcesUlimits> = Vec::new();
        for u in &self.ulimit {
            let parsed = parse_ulimit(u).map_err(|why| FlagError::value("--ulimit", u, why))?;
            match ulimits.iter_mut().find(|x| x.name == parsed.name) {
                Some(slot) => *slot = parsed,
                None => ulimits.push(parsed),
            }
        }
        let mut sysctls = HashMap::new();
        for s in &self.sysctl {
            let (k, v) = validate_sysctl(s).map_err(|why| FlagError::value("--sysctl", s, why))?;
            sysctls.insert(k, v);
        }
        let health_interval = duration_flag("--health-interval", self.health_interval.as_deref())?;
        let health_timeout = duration_flag("--health-timeout", self.health_timeout.as_deref())?;
        let health_start_period = duration_flag("--health-start-period", self.health_start_period.as_deref())?;

        // Then the checks docker makes once every flag is read.
        let pull = match self.pull.as_str() {
            "missing" => PullPolicy::Missing,
            "always" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            other => {
                return Err(FlagError::Invalid(format!(
                    "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
                )))
            }
        };
        let attach_stdin = attach.iter().any(|a| a == "stdin") || self.interactive;
        let (attach_stdout, attach_stderr) = if attach.is_empty() {
            (true, true)
        } else {
            (attach.iter().any(|a| a == "stdout"), attach.iter().any(|a| a == "stderr"))
        };

        let (exposed, port_bindings) = parse_publish(&self.publish, &self.expose)?;

        // -v: with a source it is a bind (or named volume) for HostConfig.Binds; without,
        // an anonymous volume in Config.Volumes.
        let mut binds = Vec::new();
        let mut volumes = Vec::new();
        for v in &self.volume {
            let parsed = parse_volume_spec(v).map_err(FlagError::Invalid)?;
            match parsed.source {
                Some(source) => {
                    let mut bind = v.clone();
                    if parsed.is_bind && source.starts_with('.') {
                        if let Some((host, rest)) = v.split_once(':') {
                            bind = format!("{}:{rest}", absolute(env.cwd, host).display());
                        }
                    }
                    binds.push(bind);
                }
                None => volumes.push(v.clone()),
            }
        }

        let mut tmpfs = HashMap::new();
        for t in &self.tmpfs {
            let (path, options) = t.split_once(':').unwrap_or((t, ""));
            tmpfs.insert(path.to_string(), options.to_string());
        }

        let mut devices = Vec::new();
        for d in &self.device {
            devices.push(parse_device(d).map_err(FlagError::Invalid)?);
        }

        let mut env_vars = Vec::new();
        for f in &self.env_file {
            env_vars.extend(read_kv_file(f, Some(env.lookup)).map_err(FlagError::Invalid)?);
        }
        env_vars.extend(cli_env);

        let mut label_lines = Vec::new();
        for f in &self.label_file {
            label_lines.extend(read_kv_file(f, None).map_err(FlagError::Invalid)?);
        }
        label_lines.extend(self.label.iter().cloned());
        let labels: HashMap<String, String> = label_lines
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect();

        let (security_opt, masked_paths, readonly_paths) = parse_security_opts(&self.security_opt)?;

        let restart = parse_restart_policy(&self.restart)?;
        let restart_is_none = matches!(restart.name, None | Some(RestartPolicyNameEnum::NO) | Some(RestartPolicyNameEnum::EMPTY));
        if self.rm && !restart_is_none {
            return Err(FlagError::Invalid("conflicting options: cannot specify both --restart and --rm".into()));
        }

        let log_opts: HashMap<String, String> = self
            .log_opt
            .iter()
            .map(|o| match o.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (o.clone(), String::new()),
            })
            .collect();
        if self.log_driver.as_deref() == Some("none") && !self.log_opt.is_empty() {
            return Err(FlagError::Invalid("invalid logging opts for driver none".into()));
        }

        let mut storage_opt = HashMap::new();
        for s in &self.storage_opt {
            match s.split_once('=') {
                Some((k, v)) => {
                    storage_opt.insert(k.to_string(), v.to_string());
                }
                None => return Err(FlagError::Invalid(format!("invalid storage option {s}"))),
            }
        }

        let cgroupns = match self.cgroupns.as_deref() {
            None | Some("") => None,
            Some("host") => Some(HostConfigCgroupnsModeEnum::HOST),
            Some("private") => Some(HostConfigCgroupnsModeEnum::PRIVATE),
            Some(_) => return Err(FlagError::Invalid("--cgroupns: invalid CGROUP mode".into())),
        };

        let healthcheck = self.healthcheck(health_interval, health_timeout, health_start_period)?;

        let (cap_add, cap_drop) = effective_caps(&self.cap_add, &self.cap_drop);

        let entrypoint = self.entrypoint.as_ref().map(|e| vec![e.clone()]);

        let (network_mode, endpoints) = self.network_opts()?;

        let host_config = HostConfig {
            binds: non_empty(binds),
            container_id_file: self.cidfile.clone(),
            log_config: Some(HostConfigLogConfig {
                typ: Some(self.log_driver.clone().unwrap_or_default()),
                config: Some(log_opts),
            }),
            network_mode: Some(network_mode),
            port_bindings: Some(port_bindings),
            restart_policy: Some(restart),
            auto_remove: Some(self.rm),
            volume_driver: self.volume_driver.clone(),
            volumes_from: non_empty(self.volumes_from.clone()),
            mounts: non_empty(mounts),
            cap_add,
            cap_drop,
            cgroupns_mode: cgroupns,
            dns: non_empty(self.dns.iter().map(|d| d.trim().to_string()).collect()),
            dns_options: non_empty(self.dns_option.clone()),
            dns_search: non_empty(dns_search),
            extra_hosts: non_empty(extra_hosts),
            group_add: non_empty(self.group_add.clone()),
            ipc_mode: self.ipc.clone(),
            links: non_empty(self.link.clone()),
            oom_score_adj: self.oom_score_adj,
            pid_mode: self.pid.clone(),
            privileged: Some(self.privileged),
            publish_all_ports: Some(self.publish_all),
            readonly_rootfs: Some(self.read_only),
            security_opt: non_empty(security_opt),
            storage_opt: if storage_opt.is_empty() { None } else { Some(storage_opt) },
            tmpfs: if tmpfs.is_empty() { None } else { Some(tmpfs) },
            uts_mode: self.uts.clone(),
            userns_mode: self.userns.clone(),
            shm_size,
            sysctls: if sysctls.is_empty() { None } else { Some(sysctls) },
            runtime: self.runtime.clone(),
            masked_paths,
            readonly_paths,
            init: self.init,
            // resources
            cpu_shares: self.cpu_shares,
            memory,
            cgroup_parent: self.cgroup_parent.clone(),
            blkio_weight: self.blkio_weight,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            devices: non_empty(devices),
            device_cgroup_rules: non_empty(self.device_cgroup_rule.clone()),
            memory_reservation,
            memory_swap,
            memory_swappiness: Some(self.memory_swappiness),
            nano_cpus,
            oom_kill_disable: Some(self.oom_kill_disable),
            pids_limit: self.pids_limit,
            ulimits: non_empty(ulimits),
            ..Default::default()
        };

        let body = ContainerCreateBody {
            hostname: self.hostname.clone(),
            domainname: self.domainname.clone(),
            user: self.user.clone(),
            attach_stdin: Some(attach_stdin),
            attach_stdout: Some(attach_stdout),
            attach_stderr: Some(attach_stderr),
            exposed_ports: non_empty(exposed),
            tty: Some(self.tty),
            open_stdin: Some(self.interactive),
            stdin_once: Some(self.interactive && attach_stdin),
            env: non_empty(env_vars),
            cmd: if cmd.is_empty() { None } else { Some(cmd.to_vec()) },
            healthcheck,
            image: Some(image.to_string()),
            volumes: Some(volumes),
            working_dir: self.workdir.clone(),
            entrypoint,
            labels: Some(labels),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(endpoints),
            }),
            ..Default::default()
        };
        Ok(CreateSpec {
            body,
            name: self.name.clone(),
            platform: self.platform.clone().filter(|p| !p.is_empty()),
            pull,
            cidfile: self.cidfile.clone().filter(|c| !c.is_empty()),
            quiet: self.quiet,
        })
    }

    fn healthcheck(
        &self,
        interval: Option<i64>,
        timeout: Option<i64>,
        start_period: Option<i64>,
    ) -> Result<Option<HealthConfig>, FlagError> {
        let any_health = self.health_cmd.is_some()
            || interval.is_some()
            || timeout.is_some()
            || start_period.is_some()
            || self.health_retries.is_some();
        if self.no_healthcheck {
            if any_health {
                return Err(FlagError::Invalid("--no-healthcheck conflicts with --health-* options".into()));
            }
            return Ok(Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        if !any_health {
            return Ok(None);
        }
        for (name, v) in [
            ("--health-interval", interval),
            ("--health-timeout", timeout),
            ("--health-start-period", start_period),
        ] {
            if v.unwrap_or(0) < 0 {
                return Err(FlagError::Invalid(format!("{name} cannot be negative")));
            }
        }
        if self.health_retries.unwrap_or(0) < 0 {
            return Err(FlagError::Invalid("--health-retries cannot be negative".into()));
        }
        Ok(Some(HealthConfig {
            test: self.health_cmd.as_ref().map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
            interval,
            timeout,
            retries: self.health_retries,
            start_period,
            ..Default::default()
        }))
    }

    /// The network mode and endpoint settings (docker's parseNetworkOpts): the first
    /// network gets --network-alias, --ip, --ip6, --link-local-ip and --mac-address; a
    /// single network without settings sends no endpoint.
    fn network_opts(&self) -> Result<(String, HashMap<String, EndpointSettings>), FlagError> {
        let mut endpoints = HashMap::new();
        let nets: Vec<NetworkAttachment> = self
            .network
            .iter()
            .map(|n| parse_network_attachment(n))
            .collect::<Result<_, _>>()?;
        if nets.is_empty() {
            let mut n = NetworkAttachment {
                target: "default".into(),
                ..Default::default()
            };
            self.apply_top_level(&mut n)?;
            endpoints.insert("default".to_string(), n.endpoint());
            return Ok(("default".into(), endpoints));
        }
        let (mut user_defined, mut builtin) = (false, false);
        let count = nets.len();
        for (i, mut n) in nets.into_iter().enumerate() {
            if is_user_defined_network(&n.target) {
                user_defined = true;
            } else {
                builtin = true;
            }
            if i == 0 {
                self.apply_top_level(&mut n)?;
            }
            if endpoints.contains_key(&n.target) {
                return Err(FlagError::Invalid(format!("network \"{}\" is specified multiple times", n.target)));
            }
            let ep = n.endpoint();
            if i == 0 && count == 1 && ep == EndpointSettings::default() {
                continue;
            }
            endpoints.insert(n.target.clone(), ep);
        }
        if user_defined && builtin {
            return Err(FlagError::Invalid(
                "conflicting options: cannot attach both user-defined and non-user-defined network-modes".into(),
            ));
        }
        let mode = parse_network_attachment(&self.network[0])?.target;
        Ok((mode, endpoints))
    }

    fn apply_top_level(&self, n: &mut NetworkAttachment) -> Result<(), FlagError> {
        if !self.network_alias.is_empty() && !is_user_defined_network(&n.target) {
            return Err(FlagError::Invalid(
                "network-scoped aliases are only supported for user-defined networks".into(),
            ));
        }
        let conflict = |flag: &str, what: &str| {
            FlagError::Invalid(format!("conflicting options: cannot specify both --{flag} and per-network {what}"))
        };
        if !self.network_alias.is_empty() {
            if !n.aliases.is_empty() {
                return Err(conflict("network-alias", "alias"));
            }
            n.aliases = self.network_alias.clone();
        }
        if let Some(ip) = &self.ip {
            if n.ipv4.is_some() {
                return Err(conflict("ip", "IPv4 address"));
            }
            n.ipv4 = Some(ip.clone());
        }
        if let Some(ip) = &self.ip6 {
            if n.ipv6.is_some() {
                return Err(conflict("ip6", "IPv6 address"));
            }
            n.ipv6 = Some(ip.clone());
        }
        if let Some(mac) = &self.mac_address {
            if n.mac.is_some() {
                return Err(conflict("mac-address", "MAC address"));
            }
            n.mac = Some(mac.clone());
        }
        if !self.link_local_ip.is_empty() {
            if !n.link_local.is_empty() {
                return Err(conflict("link-local-ip", "link-local IP addresses"));
            }
            n.link_local = self.link_local_ip.clone();
        }
        Ok(())
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

fn mem_flag(flag: &'static str, value: Option<&str>) -> Result<Option<i64>, FlagError> {
    match value {
        Some(v) => ram_in_bytes(v).map(Some).map_err(|why| FlagError::value(flag, v, why)),
        None => Ok(None),
    }
}

fn duration_flag(flag: &'static str, value: Option<&str>) -> Result<Option<i64>, FlagError> {
    match value {
        Some(v) => units::parse_go_duration(v)
            .map(|n| Some(n as i64))
            .map_err(|why| FlagError::value(flag, v, why)),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------
// Values

/// Sizes as docker reads them for memory flags (go-units `RAMInBytes`): binary units,
/// case-insensitive, optional `b`/`ib` (`512m`, `1g`, `1.5GiB`, `100`).
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let sep = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ');
    let Some(sep) = sep else {
        return Err(format!("invalid size: '{s}'"));
    };
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let size: f64 = num
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing \"{num}\": invalid syntax"))?;
    if size < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    if sfx.is_empty() {
        return Ok(size as i64);
    }
    let bad = || format!("invalid suffix: '{sfx}'");
    if sfx.len() > 3 {
        return Err(bad());
    }
    let lower = sfx.to_lowercase();
    let b = lower.as_bytes();
    if b[0] == b'b' {
        return if b.len() > 1 { Err(bad()) } else { Ok(size as i64) };
    }
    let mul: f64 = match b[0] {
        b'k' => 1024.0,
        b'm' => 1024.0 * 1024.0,
        b'g' => 1024.0 * 1024.0 * 1024.0,
        b't' => 1024f64.powi(4),
        b'p' => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    match b.len() {
        2 if b[1] != b'b' => return Err(bad()),
        3 if &lower[1..] != "ib" => return Err(bad()),
        _ => {}
    }
    Ok((size * mul) as i64)
}

/// `--cpus` as NanoCpus: a decimal number of CPUs with at most 9 decimals.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 9 {
        return Err("value is too precise".into());
    }
    let int: i64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
    let frac_nanos: i64 = format!("{frac_trimmed:0<9}").parse().map_err(|_| bad())?;
    let nanos = int
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(bad)?;
    Ok(if neg { -nanos } else { nanos })
}

/// `-e`: `NAME=VALUE` as is; a bare `NAME` takes the client's value when it has one.
fn validate_env(val: &str, lookup: EnvLookup) -> Result<String, String> {
    let (k, has_value) = match val.split_once('=') {
        Some((k, _)) => (k, true),
        None => (val, false),
    };
    if k.is_empty() {
        return Err(format!("invalid environment variable: {val}"));
    }
    if has_value {
        return Ok(val.to_string());
    }
    Ok(match lookup(k) {
        Some(v) => format!("{k}={v}"),
        None => val.to_string(),
    })
}

/// Reads an env or label file: `KEY=VALUE` lines (the value kept verbatim), `#` comments,
/// blank lines; a bare `KEY` takes the client's value (env files) or is dropped.
pub fn read_kv_file(path: &str, lookup: Option<EnvLookup>) -> Result<Vec<String>, String> {
    let data = std::fs::read(path).map_err(|e| format!("open {path}: {}", io_error_text(&e)))?;
    parse_kv_lines(path, &data, lookup)
}

fn parse_kv_lines(path: &str, data: &[u8], lookup: Option<EnvLookup>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if i == 0 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(format!("invalid env file ({path}): invalid utf8 bytes at line {}", i + 1));
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (variable, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        let variable = variable.trim_start_matches([' ', '\t']);
        if let Some(v) = value {
            if variable.contains([' ', '\t']) {
                return Err(format!("invalid env file ({path}): variable '{variable}' contains whitespaces"));
            }
            if variable.is_empty() {
                return Err(format!("invalid env file ({path}): no variable name on line '{line}'"));
            }
            out.push(format!("{variable}={v}"));
        } else {
            let name = variable.trim();
            if name.contains([' ', '\t']) {
                return Err(format!("invalid env file ({path}): variable '{variable}' contains whitespaces"));
            }
            if let Some(value) = lookup.and_then(|f| f(name)) {
                out.push(format!("{name}={value}"));
            }
        }
    }
    Ok(out)
}

/// An io::Error as Go prints it (`no such file or directory`).
pub fn io_error_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// `--add-host NAME:IP` (or `NAME=IP`), sent as `NAME:IP`.
fn validate_extra_host(val: &str) -> Result<String, String> {
    let (k, v) = match val.split_once('=') {
        Some(kv) => kv,
        None => val.split_once(':').unwrap_or((val, "")),
    };
    if !(val.contains('=') || val.contains(':')) || k.is_empty() || k.contains(':') {
        return Err(format!("bad format for add-host: \"{val}\""));
    }
    if v != "host-gateway" {
        let ip = if v.len() > 2 && v.starts_with('[') && v.ends_with(']') { &v[1..v.len() - 1] } else { v };
        if ip.parse::<IpAddr>().is_err() {
            return Err(format!("invalid IP address in add-host: \"{ip}\""));
        }
        return Ok(format!("{k}:{ip}"));
    }
    Ok(format!("{k}:{v}"))
}

fn validate_dns_search(val: &str) -> Result<String, String> {
    let v = val.trim_matches(' ');
    if v == "." {
        return Ok(v.to_string());
    }
    let bad = || format!("{val} is not a valid domain");
    if !v.bytes().any(|b| b.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let name = v.trim_end();
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() >= 255 || !name.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(name.to_string())
}

fn validate_sysctl(val: &str) -> Result<(String, String), String> {
    const NAMES: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let not_allowed = || format!("sysctl '{val}' is not allowed");
    let (k, v) = val.split_once('=').ok_or_else(not_allowed)?;
    if NAMES.contains(&k) || k.starts_with("net.") || k.starts_with("fs.mqueue.") {
        Ok((k.to_string(), v.to_string()))
    } else {
        Err(not_allowed())
    }
}

/// `--ulimit NAME=SOFT[:HARD]` (docker's go-units ParseUlimit).
pub fn parse_ulimit(val: &str) -> Result<ResourcesUlimits, String> {
    const NAMES: &[&str] = &[
        "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio",
        "rttime", "sigpending", "stack",
    ];
    let (name, limits) = val.split_once('=').ok_or_else(|| format!("invalid ulimit argument: {val}"))?;
    if !NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parse = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing \"{s}\": invalid syntax"))
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let soft = parse(soft)?;
            (soft, soft)
        }
        [soft, hard] => {
            let hard = parse(hard)?;
            (parse(soft)?, hard)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 && soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
pub fn parse_restart_policy(policy: &str) -> Result<RestartPolicy, FlagError> {
    if policy.is_empty() {
        return Ok(RestartPolicy::default());
    }
    let (name, count) = match policy.split_once(':') {
        Some(("", _)) => {
            return Err(FlagError::Invalid(
                "invalid restart policy format: no policy provided before colon".into(),
            ))
        }
        Some((n, c)) => (n, c),
        None => (policy, ""),
    };
    let mut p = RestartPolicy::default();
    if !count.is_empty() {
        let n: i64 = count.parse().map_err(|_| {
            FlagError::Invalid("invalid restart policy format: maximum retry count must be an integer".into())
        })?;
        p.maximum_retry_count = Some(n);
    }
    p.name = Some(match name {
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => return Err(FlagError::Invalid(format!("invalid restart policy '{other}'"))),
    });
    if p.maximum_retry_count.unwrap_or(0) != 0 && p.name != Some(RestartPolicyNameEnum::ON_FAILURE) {
        return Err(FlagError::Invalid(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
        ));
    }
    if p.maximum_retry_count.unwrap_or(0) < 0 {
        return Err(FlagError::Invalid(
            "invalid restart policy: maximum retry count cannot be negative".into(),
        ));
    }
    Ok(p)
}

/// `--security-opt`: `systempaths=unconfined` becomes empty masked/read-only path lists;
/// `seccomp=FILE` is sent as the file's compacted JSON, as docker does.
#[allow(clippy::type_complexity)]
pub fn parse_security_opts(
    opts: &[String],
) -> Result<(Vec<String>, Option<Vec<String>>, Option<Vec<String>>), FlagError> {
    let mut out = Vec::new();
    let (mut masked, mut readonly) = (None, None);
    for opt in opts {
        if opt == "systempaths=unconfined" {
            masked = Some(Vec::new());
            readonly = Some(Vec::new());
            continue;
        }
        let (mut k, mut v, mut ok) = match opt.split_once('=') {
            Some((k, v)) => (k, v, true),
            None => (opt.as_str(), "", false),
        };
        if !ok && k != "no-new-privileges" {
            if let Some((k2, v2)) = opt.split_once(':') {
                (k, v, ok) = (k2, v2, true);
            }
        }
        if (!ok || v.is_empty()) && k != "no-new-privileges" {
            return Err(FlagError::Invalid(format!("Invalid --security-opt: \"{opt}\"")));
        }
        if k == "seccomp" && v != "builtin" && v != "unconfined" {
            let data = std::fs::read(v).map_err(|e| {
                FlagError::Invalid(format!("opening seccomp profile ({v}) failed: open {v}: {}", io_error_text(&e)))
            })?;
            let compact = compact_json(&data)
                .map_err(|e| FlagError::Invalid(format!("compacting json for seccomp profile ({v}) failed: {e}")))?;
            out.push(format!("seccomp={compact}"));
            continue;
        }
        out.push(opt.clone());
    }
    Ok((out, masked, readonly))
}

/// JSON without insignificant whitespace, everything else byte for byte (Go's json.Compact).
pub fn compact_json(data: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(data).map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    Ok(out)
}

fn effective_caps(add: &[String], drop: &[String]) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let norm = |caps: &[String]| -> std::collections::BTreeSet<String> {
        caps.iter()
            .map(|c| {
                let c = c.trim().to_uppercase();
                if c == "ALL" || c.starts_with("CAP_") {
                    c
                } else {
                    format!("CAP_{c}")
                }
            })
            .collect()
    };
    let mut add = norm(add);
    let mut drop = norm(drop);
    if add.contains("ALL") {
        add = ["ALL".to_string()].into();
    }
    if drop.contains("ALL") {
        drop = ["ALL".to_string()].into();
    }
    (non_empty(add.into_iter().collect()), non_empty(drop.into_iter().collect()))
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`.
pub fn parse_device(val: &str) -> Result<DeviceMapping, String> {
    let valid_mode = |m: &str| {
        !m.is_empty() && m.len() <= 3 && m.chars().all(|c| "rwm".contains(c)) && {
            let mut seen = String::new();
            m.chars().all(|c| {
                let fresh = !seen.contains(c);
                seen.push(c);
                fresh
            })
        }
    };
    let bad = || format!("bad format for path: {val}");
    if val.matches(':').count() > 2 {
        return Err(bad());
    }
    let parts: Vec<&str> = val.split(':').collect();
    if parts[0].is_empty() {
        return Err(bad());
    }
    let (src, mut dst, mut perms) = (parts[0], "", "rwm");
    match parts.as_slice() {
        [_] => {}
        [_, second] => {
            if valid_mode(second) {
                perms = second;
            } else {
                dst = second;
            }
        }
        [_, second, mode] => {
            if !valid_mode(mode) {
                return Err(format!("bad mode specified: {mode}"));
            }
            dst = second;
            perms = mode;
        }
        _ => return Err(bad()),
    }
    let container_path = if dst.is_empty() { src } else { dst };
    if !container_path.starts_with('/') {
        return Err(format!("{container_path} is not an absolute path"));
    }
    Ok(DeviceMapping {
        path_on_host: Some(src.to_string()),
        path_in_container: Some(container_path.to_string()),
        cgroup_permissions: Some(perms.to_string()),
    })
}

// ---------------------------------------------------------------------------------------
// Volumes and mounts

#[derive(Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    pub source: Option<String>,
    pub target: String,
    pub is_bind: bool,
}

/// Splits a `-v` value as docker's CLI does: `[SOURCE:]TARGET[:OPTIONS]`; a source that
/// looks like a path (`/`, `.`, `~`) is a bind, anything else a named volume. Everything
/// else (empty sections, modes, relative targets) is the daemon's to judge.
pub fn parse_volume_spec(spec: &str) -> Result<VolumeSpec, String> {
    if spec.is_empty() {
        return Err("invalid empty volume spec".into());
    }
    let (source, target) = match spec.split_once(':') {
        Some((source, rest)) if !source.is_empty() => {
            (Some(source), rest.split(':').next().unwrap_or(""))
        }
        _ => (None, spec),
    };
    let is_bind = source.is_some_and(|s| s == "." || s == ".." || s.starts_with(['.', '/', '~']));
    Ok(VolumeSpec {
        source: source.map(str::to_string),
        target: target.to_string(),
        is_bind,
    })
}

/// `cwd` joined with `p`, with `.` and `..` resolved lexically (Go's filepath.Abs).
fn absolute(cwd: &Path, p: &str) -> PathBuf {
    let joined = if p.starts_with('/') { PathBuf::from(p) } else { cwd.join(p) };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Splits a CSV record (docker reads --mount with encoding/csv: fields may be quoted).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut at_start = true;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
            }
            '"' => return Err(format!("parse error on line 1, column {}: bare \" in non-quoted-field", cur.len() + 1)),
            c => {
                cur.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("parse error on line 1: extraneous or missing \" in quoted-field".into());
    }
    fields.push(cur);
    Ok(fields)
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…,…` (docker's MountOpt).
pub fn parse_mount(value: &str, cwd: &Path) -> Result<Mount, String> {
    let mut m = Mount::default();
    let mut typ = "volume".to_string();
    let mut bind: Option<MountBindOptions> = None;
    let mut vol: Option<MountVolumeOptions> = None;
    let mut tmp: Option<MountTmpfsOptions> = None;
    let volume_options = |vol: &mut Option<MountVolumeOptions>| -> MountVolumeOptions {
        vol.take().unwrap_or(MountVolumeOptions {
            driver_config: Some(MountVolumeOptionsDriverConfig::default()),
            ..Default::default()
        })
    };
    let parse_bool = |key: &str, v: &str| -> Result<bool, String> {
        match v {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            _ => Err(format!("invalid value for {key}: {v}")),
        }
    };
    for field in csv_fields(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v.to_string())),
            None => (field.to_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => m.read_only = Some(true),
                "volume-nocopy" => {
                    let mut o = volume_options(&mut vol);
                    o.no_copy = Some(true);
                    vol = Some(o);
                }
                "bind-nonrecursive" => bind.get_or_insert_with(Default::default).non_recursive = Some(true),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        match key.as_str() {
            "type" => typ = val.to_lowercase(),
            "source" | "src" => {
                m.source = Some(if val == "." || val.starts_with("./") {
                    absolute(cwd, &val).display().to_string()
                } else {
                    val
                })
            }
            "target" | "dst" | "destination" => m.target = Some(val),
            "readonly" | "ro" => m.read_only = Some(parse_bool(&key, &val)?),
            "consistency" => m.consistency = Some(val.to_lowercase()),
            "bind-propagation" => {
                let p = match val.to_lowercase().as_str() {
                    "private" => MountBindOptionsPropagationEnum::PRIVATE,
                    "rprivate" => MountBindOptionsPropagationEnum::RPRIVATE,
                    "shared" => MountBindOptionsPropagationEnum::SHARED,
                    "rshared" => MountBindOptionsPropagationEnum::RSHARED,
                    "slave" => MountBindOptionsPropagationEnum::SLAVE,
                    "rslave" => MountBindOptionsPropagationEnum::RSLAVE,
                    _ => return Err(format!("invalid propagation mode: {val}")),
                };
                bind.get_or_insert_with(Default::default).propagation = Some(p);
            }
            "bind-nonrecursive" => {
                bind.get_or_insert_with(Default::default).non_recursive = Some(parse_bool(&key, &val)?)
            }
            "bind-create-mountpoint" => {
                bind.get_or_insert_with(Default::default).create_mountpoint = Some(parse_bool(&key, &val)?)
            }
            "volume-nocopy" => {
                let mut o = volume_options(&mut vol);
                o.no_copy = Some(parse_bool("volume-nocopy", &val).map_err(|_| format!("invalid value for volume-nocopy: {val}"))?);
                vol = Some(o);
            }
            "volume-label" => {
                let mut o = volume_options(&mut vol);
                let (k, v) = val.split_once('=').unwrap_or((&val, ""));
                if !k.is_empty() {
                    o.labels.get_or_insert_with(HashMap::new).insert(k.to_string(), v.to_string());
                }
                vol = Some(o);
            }
            "volume-driver" => {
                let mut o = volume_options(&mut vol);
                o.driver_config.get_or_insert_with(Default::default).name = Some(val);
                vol = Some(o);
            }
            "volume-opt" => {
                let mut o = volume_options(&mut vol);
                let (k, v) = val.split_once('=').unwrap_or((&val, ""));
                if !k.is_empty() {
                    o.driver_config
                        .get_or_insert_with(Default::default)
                        .options
                        .get_or_insert_with(HashMap::new)
                        .insert(k.to_string(), v.to_string());
                }
                vol = Some(o);
            }
            "volume-subpath" => {
                let mut o = volume_options(&mut vol);
                o.subpath = Some(val);
                vol = Some(o);
            }
            "tmpfs-size" => {
                let size = ram_in_bytes(&val).map_err(|_| format!("invalid value for {key}: {val}"))?;
                tmp.get_or_insert_with(Default::default).size_bytes = Some(size);
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(&val, 8).map_err(|_| format!("invalid value for {key}: {val}"))?;
                tmp.get_or_insert_with(Default::default).mode = Some(i64::from(mode));
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if typ.is_empty() {
        return Err("type is required".into());
    }
    if m.target.as_deref().unwrap_or("").is_empty() {
        return Err("target is required".into());
    }
    if vol.is_some() && typ != "volume" {
        return Err(format!("cannot mix 'volume-*' options with mount type '{typ}'"));
    }
    if bind.is_some() && typ != "bind" {
        return Err(format!("cannot mix 'bind-*' options with mount type '{typ}'"));
    }
    if tmp.is_some() && typ != "tmpfs" {
        return Err(format!("cannot mix 'tmpfs-*' options with mount type '{typ}'"));
    }
    m.typ = Some(match typ.as_str() {
        "bind" => MountType::BIND,
        "volume" => MountType::VOLUME,
        "tmpfs" => MountType::TMPFS,
        "npipe" => MountType::NPIPE,
        "cluster" => MountType::CLUSTER,
        "image" => MountType::IMAGE,
        other => return Err(format!("invalid mount config for type \"{other}\": mount type unknown")),
    });
    m.bind_options = bind;
    m.volume_options = vol;
    m.tmpfs_options = tmp;
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// Ports

/// `-p`/`--publish` and `--expose` into ExposedPorts and PortBindings (docker's
/// nat.ParsePortSpecs; the long `target=…,published=…` form too).
#[allow(clippy::type_complexity)]
pub fn parse_publish(
    publish: &[String],
    expose: &[String],
) -> Result<(Vec<String>, HashMap<String, Option<Vec<PortBinding>>>), FlagError> {
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for raw in publish {
        let spec = if raw.contains('=') { long_publish(raw)? } else { raw.clone() };
        for (port, binding) in parse_port_spec(&spec).map_err(FlagError::Invalid)? {
            if !exposed.contains(&port) {
                exposed.push(port.clone());
            }
            bindings.entry(port).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(binding);
        }
    }
    for e in expose {
        if e.contains(':') {
            return Err(FlagError::Invalid(format!("invalid port format for --expose: {e}")));
        }
        let (proto, port) = split_proto_port(e);
        let (start, end) = parse_port_range(&port)
            .map_err(|err| FlagError::Invalid(format!("invalid range format for --expose: {e}, error: {err}")))?;
        for p in start..=end {
            let key = format!("{p}/{proto}");
            if !exposed.contains(&key) {
                exposed.push(key);
            }
        }
    }
    Ok((exposed, bindings))
}

fn long_publish(raw: &str) -> Result<String, FlagError> {
    let mut params: HashMap<&str, &str> = HashMap::from([("protocol", "tcp")]);
    for param in raw.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                params.insert(k, v);
            }
            _ => {
                return Err(FlagError::Invalid(format!(
                    "invalid publish opts format (should be name=value but got '{param}')"
                )))
            }
        }
    }
    Ok(format!(
        "{}:{}/{}",
        params.get("published").unwrap_or(&""),
        params.get("target").unwrap_or(&""),
        params["protocol"]
    ))
}

fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp".into(), parts[0].to_string());
    }
    (parts[1].to_string(), parts[0].to_string())
}

fn parse_u16(s: &str) -> Result<u64, String> {
    s.parse::<u16>()
        .map(u64::from)
        .map_err(|e| match e.kind() {
            std::num::IntErrorKind::PosOverflow => format!("strconv.ParseUint: parsing \"{s}\": value out of range"),
            _ => format!("strconv.ParseUint: parsing \"{s}\": invalid syntax"),
        })
}

fn parse_port_range(ports: &str) -> Result<(u64, u64), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".into());
    }
    match ports.split_once('-') {
        None => {
            let p = parse_u16(ports)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let b = b.split('-').next().unwrap_or(b);
            let (start, end) = (parse_u16(a)?, parse_u16(b)?);
            if end < start {
                return Err(format!("invalid range specified for port: {ports}"));
            }
            Ok((start, end))
        }
    }
}

/// One `-p` value: `[IP:][HOST:]CONTAINER[/PROTO]`, ranges allowed on both sides.
pub fn parse_port_spec(raw: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    let (mut ip, host) = match n {
        1 => (String::new(), ""),
        2 => (String::new(), parts[0]),
        3 => (parts[0].to_string(), parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let (proto, container) = split_proto_port(container);
    if ip.starts_with('[') {
        match ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(inner) => ip = inner.to_string(),
            None => return Err(format!("invalid IP address {ip}: missing ']' in address")),
        }
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) = parse_port_range(&container).map_err(|_| format!("invalid containerPort: {container}"))?;
    let (mut host_start, mut host_end) = (0, 0);
    if !host.is_empty() {
        (host_start, host_end) = parse_port_range(host).map_err(|_| format!("invalid hostPort: {host}"))?;
    }
    if !host.is_empty() && (end - start) != (host_end.wrapping_sub(host_start)) && end != start {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {container} and {host}"
        ));
    }
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let mut out = Vec::new();
    for i in 0..=(end - start) {
        let mut host_port = if host.is_empty() { String::new() } else { (host_start + i).to_string() };
        if start == end && host_start != host_end {
            host_port = format!("{host_port}-{host_end}");
        }
        out.push((
            format!("{}/{proto}", start + i),
            PortBinding {
                host_ip: Some(ip.clone()),
                host_port: Some(host_port),
            },
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Networks

#[derive(Debug, Default, Clone)]
struct NetworkAttachment {
    target: String,
    aliases: Vec<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    mac: Option<String>,
    link_local: Vec<String>,
    driver_opts: HashMap<String, String>,
}

impl NetworkAttachment {
    fn endpoint(&self) -> EndpointSettings {
        let ipam = if self.ipv4.is_some() || self.ipv6.is_some() || !self.link_local.is_empty() {
            Some(EndpointIpamConfig {
                ipv4_address: self.ipv4.clone(),
                ipv6_address: self.ipv6.clone(),
                link_local_ips: non_empty(self.link_local.clone()),
            })
        } else {
            None
        };
        EndpointSettings {
            ipam_config: ipam,
            aliases: non_empty(self.aliases.clone()),
            mac_address: self.mac.clone(),
            driver_opts: if self.driver_opts.is_empty() { None } else { Some(self.driver_opts.clone()) },
            ..Default::default()
        }
    }
}

/// `--network NAME` or the long form `name=NAME,alias=A,ip=…,ip6=…,mac-address=…,
/// link-local-ip=…,driver-opt=K=V`.
fn parse_network_attachment(value: &str) -> Result<NetworkAttachment, FlagError> {
    if !value.contains('=') {
        return Ok(NetworkAttachment {
            target: value.to_string(),
            ..Default::default()
        });
    }
    let mut n = NetworkAttachment::default();
    for field in csv_fields(value).map_err(FlagError::Invalid)? {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| FlagError::Invalid(format!("invalid field '{field}' must be a key=value pair")))?;
        match k.to_lowercase().as_str() {
            "name" => n.target = v.to_string(),
            "alias" => n.aliases.push(v.to_string()),
            "ip" => n.ipv4 = Some(v.to_string()),
            "ip6" => n.ipv6 = Some(v.to_string()),
            "mac-address" => n.mac = Some(v.to_string()),
            "link-local-ip" => n.link_local.push(v.to_string()),
            "driver-opt" => {
                let (dk, dv) = v.split_once('=').unwrap_or((v, ""));
                n.driver_opts.insert(dk.to_string(), dv.to_string());
            }
            _ => return Err(FlagError::Invalid(format!("invalid field key {k}"))),
        }
    }
    if n.target.is_empty() {
        return Err(FlagError::Invalid("network name/id is not specified".into()));
    }
    Ok(n)
}

fn is_user_defined_network(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(disable_help_flag = true)]
    struct Cmd {
        #[command(flatten)]
        flags: CreateFlags,
        #[arg(required = true, trailing_var_arg = true)]
        args: Vec<String>,
    }

    fn parse_with(argv: &[&str], env: &[(&str, &str)]) -> Result<CreateSpec, FlagError> {
        let mut full = vec!["x"];
        full.extend_from_slice(argv);
        let cmd = Cmd::try_parse_from(full).expect("clap parses");
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |k: &str| env.get(k).cloned();
        let cwd = PathBuf::from("/work/dir");
        cmd.flags.build(&cmd.args[0], &cmd.args[1..], &ParseEnv { lookup: &lookup, cwd: &cwd })
    }

    fn parse(argv: &[&str]) -> CreateSpec {
        parse_with(argv, &[]).unwrap()
    }

    fn host(spec: &CreateSpec) -> &HostConfig {
        spec.body.host_config.as_ref().unwrap()
    }

    #[test]
    fn defaults_match_docker() {
        let s = parse(&["busybox"]);
        let b = &s.body;
        assert_eq!(b.image.as_deref(), Some("busybox"));
        assert_eq!((b.attach_stdin, b.attach_stdout, b.attach_stderr), (Some(false), Some(true), Some(true)));
        assert_eq!((b.tty, b.open_stdin, b.stdin_once), (Some(false), Some(false), Some(false)));
        assert_eq!(b.cmd, None);
        assert_eq!(b.entrypoint, None);
        let h = host(&s);
        assert_eq!(h.network_mode.as_deref(), Some("default"));
        assert_eq!(h.restart_policy.as_ref().unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(h.memory_swappiness, Some(-1));
        let eps = b.networking_config.as_ref().unwrap().endpoints_config.as_ref().unwrap();
        assert_eq!(eps.keys().collect::<Vec<_>>(), vec!["default"]);
        assert_eq!(s.pull, PullPolicy::Missing);
        let json = serde_json::to_value(b).unwrap();
        assert_eq!(json.get("ExposedPorts"), None);
        assert_eq!(json["Volumes"], serde_json::json!({}));
        assert_eq!(json["HostConfig"]["LogConfig"], serde_json::json!({"Type": "", "Config": {}}));
    }

    #[test]
    fn interactive_tty_and_command() {
        let s = parse(&["-it", "--entrypoint", "sh", "busybox", "-c", "echo hi"]);
        let b = &s.body;
        assert_eq!((b.attach_stdin, b.tty, b.open_stdin, b.stdin_once), (Some(true), Some(true), Some(true), Some(true)));
        assert_eq!(b.entrypoint, Some(vec!["sh".to_string()]));
        assert_eq!(b.cmd, Some(vec!["-c".to_string(), "echo hi".to_string()]));
        let s = parse(&["--entrypoint=", "-a", "STDERR", "busybox"]);
        assert_eq!(s.body.entrypoint, Some(vec![String::new()]));
        assert_eq!((s.body.attach_stdout, s.body.attach_stderr), (Some(false), Some(true)));
        assert!(matches!(
            parse_with(&["-a", "foo", "busybox"], &[]),
            Err(FlagError::Value { flag: "-a, --attach", .. })
        ));
        // --sig-proxy-style booleans take explicit values
        let s = parse(&["--rm=false", "--privileged=true", "-t=false", "busybox"]);
        assert_eq!(host(&s).auto_remove, Some(false));
        assert_eq!(host(&s).privileged, Some(true));
        assert_eq!(s.body.tty, Some(false));
    }

    #[test]
    fn ports() {
        let s = parse(&[
            "-p", "127.0.0.1:8080:80/udp", "-p", "9000-9001:9000-9001", "-p", "5000", "-p", "[::1]:53:53/UDP",
            "-p", "7000-7002:7000", "-p", "target=443,published=8443", "--expose", "6000-6001", "--expose", "80/udp",
            "busybox",
        ]);
        let h = host(&s);
        let pb = h.port_bindings.as_ref().unwrap();
        let one = |k: &str| {
            let v = pb[k].as_ref().unwrap();
            assert_eq!(v.len(), 1, "{k}");
            (v[0].host_ip.clone().unwrap(), v[0].host_port.clone().unwrap())
        };
        assert_eq!(one("80/udp"), ("127.0.0.1".into(), "8080".into()));
        assert_eq!(one("9000/tcp"), ("".into(), "9000".into()));
        assert_eq!(one("9001/tcp"), ("".into(), "9001".into()));
        assert_eq!(one("5000/tcp"), ("".into(), "".into()));
        assert_eq!(one("53/udp"), ("::1".into(), "53".into()));
        assert_eq!(one("7000/tcp"), ("".into(), "7000-7002".into()));
        assert_eq!(one("443/tcp"), ("".into(), "8443".into()));
        let exposed = s.body.exposed_ports.clone().unwrap();
        for p in ["80/udp", "9000/tcp", "9001/tcp", "5000/tcp", "53/udp", "6000/tcp", "6001/tcp", "443/tcp"] {
            assert!(exposed.contains(&p.to_string()), "{p}");
        }
        assert_eq!(exposed.iter().filter(|p| *p == "80/udp").count(), 1);
        let err = |v: &str| match parse_with(&["-p", v, "busybox"], &[]) {
            Err(FlagError::Invalid(m)) => m,
            other => panic!("{v}: {other:?}"),
        };
        assert_eq!(err("70000:80"), "invalid hostPort: 70000");
        assert_eq!(err("80/xyz"), "invalid proto: xyz");
        assert_eq!(err("1-3:4-5"), "invalid ranges specified for container and host Ports: 4-5 and 1-3");
        assert_eq!(err("1:2:3:4/xyz"), "invalid IP address: 1:2");
        assert_eq!(err("8080:"), "no port specified: 8080:<empty>");
        assert_eq!(err("x"), "invalid containerPort: x");
        assert_eq!(
            parse_with(&["--expose", "1:2", "busybox"], &[]).unwrap_err(),
            FlagError::Invalid("invalid port format for --expose: 1:2".into())
        );
        let json = serde_json::to_value(&s.body).unwrap();
        assert_eq!(json["ExposedPorts"]["80/udp"], serde_json::json!({}));
        assert_eq!(json["HostConfig"]["PortBindings"]["80/udp"], serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}]));
    }

    #[test]
    fn volumes_and_mounts() {
        let s = parse(&[
            "-v", "/tmp:/mnt:ro", "-v", "vol1:/v1", "-v", "/anon", "-v", "./x:/x", "-v", "../up:/up:rw",
            "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
            "--mount", "type=volume,src=v2,dst=/v2,volume-nocopy",
            "--mount", "type=bind,src=.,dst=/b,readonly,bind-propagation=rslave",
            "--mount", "\"type=bind\",source=/a,target=/c,ro=false",
            "--tmpfs", "/run:rw,size=1m", "--tmpfs", "/scratch", "--volumes-from", "other:ro",
            "busybox",
        ]);
        let h = host(&s);
        assert_eq!(
            h.binds.clone().unwrap(),
            vec!["/tmp:/mnt:ro", "vol1:/v1", "/work/dir/x:/x", "/work/up:/up:rw"]
        );
        assert_eq!(s.body.volumes.clone().unwrap(), vec!["/anon"]);
        let mounts = h.mounts.clone().unwrap();
        assert_eq!(mounts[0].typ, Some(MountType::TMPFS));
        assert_eq!(mounts[0].target.as_deref(), Some("/t"));
        let t = mounts[0].tmpfs_options.clone().unwrap();
        assert_eq!((t.size_bytes, t.mode), (Some(1 << 20), Some(0o1770)));
        assert_eq!(mounts[1].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[1].source.as_deref(), Some("v2"));
        assert_eq!(mounts[1].volume_options.as_ref().unwrap().no_copy, Some(true));
        assert_eq!(mounts[2].typ, Some(MountType::BIND));
        assert_eq!(mounts[2].source.as_deref(), Some("/work/dir"));
        assert_eq!(mounts[2].read_only, Some(true));
        assert_eq!(
            mounts[2].bind_options.as_ref().unwrap().propagation,
            Some(MountBindOptionsPropagationEnum::RSLAVE)
        );
        assert_eq!(mounts[3].read_only, Some(false));
        let tmpfs = h.tmpfs.clone().unwrap();
        assert_eq!(tmpfs["/run"], "rw,size=1m");
        assert_eq!(tmpfs["/scratch"], "");
        assert_eq!(h.volumes_from.clone().unwrap(), vec!["other:ro"]);
        let json = serde_json::to_value(&mounts[0]).unwrap();
        assert_eq!(json, serde_json::json!({"Target": "/t", "Type": "tmpfs", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1016}}));

        let cwd = PathBuf::from("/");
        assert_eq!(parse_mount("type=bind", &cwd).unwrap_err(), "target is required");
        assert_eq!(parse_mount("type=bind,dst=/x,foo=bar", &cwd).unwrap_err(), "unexpected key 'foo' in 'foo=bar'");
        assert_eq!(
            parse_mount("type=tmpfs,dst=/x,volume-nocopy", &cwd).unwrap_err(),
            "cannot mix 'volume-*' options with mount type 'tmpfs'"
        );
        assert_eq!(parse_mount("dst=/x,ro=maybe", &cwd).unwrap_err(), "invalid value for ro: maybe");
        assert_eq!(parse_mount("dst=/x,bogus", &cwd).unwrap_err(), "invalid field 'bogus' must be a key=value pair");
        assert_eq!(
            parse_mount("type=foo,dst=/x", &cwd).unwrap_err(),
            "invalid mount config for type \"foo\": mount type unknown"
        );
        assert!(matches!(
            parse_with(&["--mount", "type=bind", "busybox"], &[]),
            Err(FlagError::Value { flag: "--mount", .. })
        ));
        assert_eq!(parse_volume_spec("a::b").unwrap().source.as_deref(), Some("a"));
        assert_eq!(parse_volume_spec("/data").unwrap().source, None);
        assert!(parse_volume_spec("").is_err());
        assert_eq!(
            parse_volume_spec("~/x:/y").unwrap(),
            VolumeSpec {
                source: Some("~/x".into()),
                target: "/y".into(),
                is_bind: true
            }
        );
    }

    #[test]
    fn ulimits_sizes_cpus() {
        let s = parse(&[
            "--ulimit", "nofile=100:200", "--ulimit", "nproc=50", "--ulimit", "nofile=300:400", "-m", "512m",
            "--memory-swap", "-1", "--memory-reservation", "1.5g", "--shm-size", "64MiB", "--cpus", "1.5", "-c", "512",
            "--pids-limit", "-1", "--oom-kill-disable", "busybox",
        ]);
        let h = host(&s);
        let ul = h.ulimits.clone().unwrap();
        assert_eq!(ul.len(), 2);
        assert_eq!((ul[0].name.as_deref(), ul[0].soft, ul[0].hard), (Some("nofile"), Some(300), Some(400)));
        assert_eq!((ul[1].name.as_deref(), ul[1].soft, ul[1].hard), (Some("nproc"), Some(50), Some(50)));
        assert_eq!(h.memory, Some(512 << 20));
        assert_eq!(h.memory_swap, Some(-1));
        assert_eq!(h.memory_reservation, Some(1610612736));
        assert_eq!(h.shm_size, Some(64 << 20));
        assert_eq!(h.nano_cpus, Some(1_500_000_000));
        assert_eq!(h.cpu_shares, Some(512));
        assert_eq!(h.pids_limit, Some(-1));
        assert_eq!(h.oom_kill_disable, Some(true));

        assert_eq!(ram_in_bytes("1g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("1 GB"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("32kb"), Ok(32 << 10));
        assert_eq!(ram_in_bytes("12x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(ram_in_bytes("abc"), Err("invalid size: 'abc'".into()));
        assert_eq!(ram_in_bytes("1gbb"), Err("invalid suffix: 'gbb'".into()));
        assert_eq!(ram_in_bytes("-1"), Err("invalid size: '-1'".into()));
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("0.0000000001"), Err("value is too precise".into()));
        assert_eq!(parse_cpus("x"), Err("failed to parse x as a rational number".into()));

        assert_eq!(parse_ulimit("nofile=x").unwrap_err(), "strconv.ParseInt: parsing \"x\": invalid syntax");
        assert_eq!(parse_ulimit("bogus=1").unwrap_err(), "invalid ulimit type: bogus");
        assert_eq!(
            parse_ulimit("nofile=2:1").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: 2 > 1"
        );
        assert_eq!(parse_ulimit("nofile").unwrap_err(), "invalid ulimit argument: nofile");
        assert_eq!(parse_ulimit("core=-1:-1").unwrap().soft, Some(-1));
        let e = parse_with(&["-m", "12x", "busybox"], &[]).unwrap_err();
        assert_eq!(e.to_string(), "invalid argument \"12x\" for \"-m, --memory\" flag: invalid suffix: 'x'");
        assert!(e.render("run").ends_with("Run 'berth run --help' for more information"));
    }

    #[test]
    fn restart_policies() {
        let p = parse_restart_policy("on-failure:3").unwrap();
        assert_eq!((p.name, p.maximum_retry_count), (Some(RestartPolicyNameEnum::ON_FAILURE), Some(3)));
        assert_eq!(parse_restart_policy("always").unwrap().name, Some(RestartPolicyNameEnum::ALWAYS));
        assert_eq!(parse_restart_policy("unless-stopped").unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(parse_restart_policy("on-failure").unwrap().maximum_retry_count, None);
        assert_eq!(
            parse_restart_policy("on-failure:x").unwrap_err(),
            FlagError::Invalid("invalid restart policy format: maximum retry count must be an integer".into())
        );
        assert_eq!(
            parse_restart_policy(":3").unwrap_err(),
            FlagError::Invalid("invalid restart policy format: no policy provided before colon".into())
        );
        assert_eq!(
            parse_restart_policy("bogus").unwrap_err(),
            FlagError::Invalid("invalid restart policy 'bogus'".into())
        );
        assert!(parse_restart_policy("always:2").is_err());
        assert_eq!(
            parse_with(&["--rm", "--restart", "always", "busybox"], &[]).unwrap_err(),
            FlagError::Invalid("conflicting options: cannot specify both --restart and --rm".into())
        );
        assert!(parse_with(&["--rm", "--restart", "no", "busybox"], &[]).is_ok());
        let json = serde_json::to_value(parse_restart_policy("on-failure:3").unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 3}));
    }

    #[test]
    fn security_opts() {
        let dir = std::env::temp_dir().join(format!("berth-opts-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let profile = dir.join("seccomp.json");
        std::fs::write(&profile, "{ \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [ ],\n \"s\": \"a b\" }\n").unwrap();
        let p = profile.display().to_string();
        let opts: Vec<String> = [
            "no-new-privileges",
            "no-new-privileges:true",
            "apparmor=unconfined",
            "label=disable",
            "seccomp=unconfined",
            &format!("seccomp={p}"),
            "systempaths=unconfined",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (out, masked, ro) = parse_security_opts(&opts).unwrap();
        assert_eq!(
            out,
            vec![
                "no-new-privileges",
                "no-new-privileges:true",
                "apparmor=unconfined",
                "label=disable",
                "seccomp=unconfined",
                r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[],"s":"a b"}"#,
            ]
        );
        assert_eq!((masked, ro), (Some(vec![]), Some(vec![])));
        assert_eq!(
            parse_security_opts(&["foo".into()]).unwrap_err(),
            FlagError::Invalid("Invalid --security-opt: \"foo\"".into())
        );
        assert_eq!(
            parse_security_opts(&["seccomp=/nonexistent/x.json".into()]).unwrap_err(),
            FlagError::Invalid(
                "opening seccomp profile (/nonexistent/x.json) failed: open /nonexistent/x.json: no such file or directory"
                    .into()
            )
        );
        std::fs::write(&profile, "{ not json").unwrap();
        assert!(parse_security_opts(&[format!("seccomp={p}")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn env_files_and_labels() {
        let dir = std::env::temp_dir().join(format!("berth-env-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let envf = dir.join("env");
        std::fs::write(&envf, "\u{feff}A=1\n# comment\n  B= 2 \nHOME\nNOPE\nEMPTY=\r\n\n").unwrap();
        let labelf = dir.join("labels");
        std::fs::write(&labelf, "team=core\nbare\n").unwrap();
        let e = envf.display().to_string();
        let l = labelf.display().to_string();
        let s = parse_with(
            &["--env-file", &e, "-e", "X=1", "-e", "HOME", "-e", "UNSET", "--label-file", &l, "-l", "a=b", "-l", "c", "busybox"],
            &[("HOME", "/root")],
        )
        .unwrap();
        assert_eq!(
            s.body.env.clone().unwrap(),
            vec!["A=1", "B= 2 ", "HOME=/root", "EMPTY=", "X=1", "HOME=/root", "UNSET"]
        );
        let labels = s.body.labels.clone().unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!((labels["team"].as_str(), labels["a"].as_str(), labels["c"].as_str()), ("core", "b", ""));

        std::fs::write(&envf, "B =2\n").unwrap();
        assert_eq!(
            parse_with(&["--env-file", &e, "busybox"], &[]).unwrap_err(),
            FlagError::Invalid(format!("invalid env file ({e}): variable 'B ' contains whitespaces"))
        );
        assert_eq!(
            parse_with(&["--env-file", "/nonexistent/env", "busybox"], &[]).unwrap_err(),
            FlagError::Invalid("open /nonexistent/env: no such file or directory".into())
        );
        assert!(matches!(
            parse_with(&["-e", "=x", "busybox"], &[]),
            Err(FlagError::Value { flag: "-e, --env", .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn networks_hosts_devices_caps() {
        let s = parse(&["--network", "none", "busybox"]);
        assert_eq!(host(&s).network_mode.as_deref(), Some("none"));
        assert!(s.body.networking_config.as_ref().unwrap().endpoints_config.as_ref().unwrap().is_empty());
        let s = parse(&["--net", "mynet", "--network-alias", "web", "--ip", "10.0.0.5", "busybox"]);
        let eps = s.body.networking_config.clone().unwrap().endpoints_config.unwrap();
        let ep = &eps["mynet"];
        assert_eq!(ep.aliases.clone().unwrap(), vec!["web"]);
        assert_eq!(ep.ipam_config.as_ref().unwrap().ipv4_address.as_deref(), Some("10.0.0.5"));
        assert!(parse_with(&["--network", "host", "--network", "mynet", "busybox"], &[]).is_err());
        assert_eq!(
            parse_with(&["--network", "host", "--network-alias", "x", "busybox"], &[]).unwrap_err(),
            FlagError::Invalid("network-scoped aliases are only supported for user-defined networks".into())
        );
        assert_eq!(host(&parse(&["--network", "container:abc", "busybox"])).network_mode.as_deref(), Some("container:abc"));

        let s = parse(&[
            "--add-host", "h:1.2.3.4", "--add-host", "v6=[::1]", "--add-host", "gw:host-gateway", "--dns", "1.1.1.1",
            "--dns-search", "example.com", "--dns-option", "ndots:2", "--device", "/dev/null:/dev/mynull:r",
            "--device", "/dev/zero", "--device", "/dev/fuse:rw", "--cap-add", "net_admin", "--cap-add", "CAP_SYS_TIME",
            "--cap-drop", "MKNOD", "--cap-drop", "net_admin", "busybox",
        ]);
        let h = host(&s);
        assert_eq!(h.extra_hosts.clone().unwrap(), vec!["h:1.2.3.4", "v6:::1", "gw:host-gateway"]);
        assert_eq!(h.dns.clone().unwrap(), vec!["1.1.1.1"]);
        let devs = h.devices.clone().unwrap();
        assert_eq!(
            (devs[0].path_on_host.as_deref(), devs[0].path_in_container.as_deref(), devs[0].cgroup_permissions.as_deref()),
            (Some("/dev/null"), Some("/dev/mynull"), Some("r"))
        );
        assert_eq!(devs[1].path_in_container.as_deref(), Some("/dev/zero"));
        assert_eq!(devs[1].cgroup_permissions.as_deref(), Some("rwm"));
        assert_eq!(devs[2].path_in_container.as_deref(), Some("/dev/fuse"));
        assert_eq!(devs[2].cgroup_permissions.as_deref(), Some("rw"));
        assert_eq!(h.cap_add.clone().unwrap(), vec!["CAP_NET_ADMIN", "CAP_SYS_TIME"]);
        // docker leaves a capability both added and dropped to the daemon
        assert_eq!(h.cap_drop.clone().unwrap(), vec!["CAP_MKNOD", "CAP_NET_ADMIN"]);
        assert_eq!(parse_device("a:b:c:d").unwrap_err(), "bad format for path: a:b:c:d");
        assert_eq!(parse_device("/dev/x:/y:rwx").unwrap_err(), "bad mode specified: rwx");
        assert_eq!(parse_device("/dev/x:y").unwrap_err(), "y is not an absolute path");
        for (v, msg) in [
            ("--add-host", "bad format for add-host: \"bad\""),
            ("--dns", "IP address is not correctly formatted: bad"),
            ("--dns-search", "bad is not a valid domain"),
        ] {
            let arg = if v == "--dns-search" { "bad..x" } else { "bad" };
            match parse_with(&[v, arg, "busybox"], &[]).unwrap_err() {
                FlagError::Value { why, .. } => {
                    if v == "--dns-search" {
                        assert_eq!(why, "bad..x is not a valid domain");
                    } else {
                        assert_eq!(why, msg);
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn misc_flags() {
        let s = parse(&[
            "--name", "web", "-w", "/tmp", "-u", "1000:1000", "--group-add", "10", "-h", "myhost", "--read-only",
            "--init", "--stop-signal", "SIGUSR1", "--stop-timeout", "5", "--log-driver", "json-file", "--log-opt",
            "max-size=1m", "--log-opt", "max-file=2", "--platform", "linux/amd64", "--pull", "never", "--cidfile",
            "/tmp/cid", "--health-cmd", "true", "--health-interval", "10s", "--sysctl", "net.ipv4.ip_forward=1",
            "--privileged", "-P", "busybox",
        ]);
        assert_eq!(s.name.as_deref(), Some("web"));
        assert_eq!(s.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(s.pull, PullPolicy::Never);
        assert_eq!(s.cidfile.as_deref(), Some("/tmp/cid"));
        let b = &s.body;
        assert_eq!(b.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(b.user.as_deref(), Some("1000:1000"));
        assert_eq!(b.hostname.as_deref(), Some("myhost"));
        assert_eq!(b.stop_signal.as_deref(), Some("SIGUSR1"));
        assert_eq!(b.stop_timeout, Some(5));
        let hc = b.healthcheck.clone().unwrap();
        assert_eq!(hc.test.unwrap(), vec!["CMD-SHELL", "true"]);
        assert_eq!(hc.interval, Some(10_000_000_000));
        let h = host(&s);
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.init, Some(true));
        assert_eq!(h.group_add.clone().unwrap(), vec!["10"]);
        let lc = h.log_config.clone().unwrap();
        assert_eq!(lc.typ.as_deref(), Some("json-file"));
        assert_eq!(lc.config.unwrap()["max-size"], "1m");
        assert_eq!(h.container_id_file.as_deref(), Some("/tmp/cid"));
        assert_eq!(h.sysctls.clone().unwrap()["net.ipv4.ip_forward"], "1");
        assert_eq!((h.privileged, h.publish_all_ports), (Some(true), Some(true)));
        assert_eq!(
            parse_with(&["--pull", "bogus", "busybox"], &[]).unwrap_err(),
            FlagError::Invalid("invalid pull option: 'bogus': must be one of \"always\", \"missing\" or \"never\"".into())
        );
        assert_eq!(
            parse_with(&["--log-driver", "none", "--log-opt", "a=b", "busybox"], &[]).unwrap_err(),
            FlagError::Invalid("invalid logging opts for driver none".into())
        );
        assert!(parse_with(&["--no-healthcheck", "--health-cmd", "x", "busybox"], &[]).is_err());
        assert_eq!(parse(&["--init=false", "busybox"]).body.host_config.unwrap().init, Some(false));
        assert_eq!(parse(&["busybox"]).body.host_config.unwrap().init, None);
    }

    #[test]
    fn compacts_json_like_go() {
        assert_eq!(compact_json(b"{ \"a\" : [1, 2],\n \"b\":\"x y\\\" z\" }").unwrap(), r#"{"a":[1,2],"b":"x y\" z"}"#);
        assert!(compact_json(b"{").is_err());
    }
}
