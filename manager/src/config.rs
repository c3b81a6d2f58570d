//! berthd's settings: dockerd-style flags over a TOML file (`/etc/berth/berthd.toml`).

use crate::errors::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/berthd.toml";

#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// Unix socket paths to listen on.
    pub hosts: Vec<PathBuf>,
    pub insecure_registries: Vec<String>,
    pub pidfile: PathBuf,
    pub log_level: String,
    pub debug: bool,
    /// The default bridge network's Linux bridge (`--bridge`, dockerd's `-b`).
    pub bridge: String,
    /// The default bridge's gateway address and prefix (`--bip`), e.g. 172.17.0.1/16.
    pub bip: Option<String>,
    /// MTU of the default bridge's endpoints (`--mtu`); 0 keeps the kernel's.
    pub mtu: u32,
    /// `--firewall-backend`: nftables or iptables; empty picks nftables where `nft` exists.
    pub firewall_backend: String,
    /// `--cgroup-parent`: where containers' cgroups go (`<parent>/<id>`), unless a container
    /// names its own; `/berth` by default (dockerd's is `/docker`).
    pub cgroup_parent: String,
}

/// The file's keys are the flags' names (`data-root = "/srv/berth"`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub hosts: Option<Vec<String>>,
    pub insecure_registries: Option<Vec<String>>,
    pub pidfile: Option<PathBuf>,
    pub log_level: Option<String>,
    pub debug: Option<bool>,
    pub bridge: Option<String>,
    pub bip: Option<String>,
    pub mtu: Option<u32>,
    pub firewall_backend: Option<String>,
    pub cgroup_parent: Option<String>,
}

impl FileConfig {
    /// Read the file; a missing default file is fine, a missing named one is not.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (p, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        match std::fs::read_to_string(&p) {
            Ok(s) => toml::from_str(&s).map_err(|e| Error::invalid(format!("config file {}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Self::default()),
            Err(e) => Err(Error::invalid(format!("config file {}: {e}", p.display()))),
        }
    }
}

/// A cgroup parent as `--cgroup-parent` or a container's CgroupParent gives it: absolute
/// (a relative one is taken from the root, as cgroupfs paths are), no `.` or `..` steps.
pub fn cgroup_parent(p: &str) -> Result<String> {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|c| *c == "." || *c == "..") || p.contains('\0') {
        return Err(Error::invalid(format!("invalid cgroup parent {p:?}: use a path such as /berth or /mygroup/sub")));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `unix:///run/berth/berth.sock` → the path. Only unix sockets are served.
pub fn parse_host(h: &str) -> Result<PathBuf> {
    if let Some(p) = h.strip_prefix("unix://") {
        if p.is_empty() {
            return Err(Error::invalid(format!("invalid host {h:?}: empty socket path")));
        }
        return Ok(PathBuf::from(p));
    }
    if h.starts_with('/') {
        return Ok(PathBuf::from(h));
    }
    Err(Error::invalid(format!("invalid host {h:?}: berthd listens on unix sockets only (unix:///PATH)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_parents() {
        assert_eq!(cgroup_parent("/berth").unwrap(), "/berth");
        assert_eq!(cgroup_parent("a/b/").unwrap(), "/a/b");
        assert_eq!(cgroup_parent("//a//b").unwrap(), "/a/b");
        for bad in ["", "/", "/a/../b", "..", "/a/./b"] {
            assert!(cgroup_parent(bad).is_err(), "{bad:?} accepted");
        }
    }
}
