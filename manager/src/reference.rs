//! Docker image references: `busybox` is `docker.io/library/busybox:latest`.

use crate::errors::{Error, Result};
use std::fmt;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry domain as users write it (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path inside the registry (`library/busybox`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parse and normalize; a reference with neither tag nor digest gets `latest`.
    pub fn parse(s: &str) -> Result<Self> {
        let mut r = Self::parse_name_only(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.into());
        }
        Ok(r)
    }

    /// Parse without defaulting the tag (for `repo` arguments that may be bare names).
    pub fn parse_name_only(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid(format!("invalid reference format: {why}: {s:?}"));
        if s.is_empty() || s.len() > 4096 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(|_| bad("bad digest"))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(bad("bad tag"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" { DEFAULT_DOMAIN.to_string() } else { domain };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') { format!("library/{path}") } else { path };
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(bad("repository name must be lowercase alphanumerics separated by '.', '_', '__', '-' or '/'"));
        }
        if domain.is_empty() || !domain.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) {
            return Err(bad("bad registry domain"));
        }
        Ok(Reference { domain, path, tag, digest })
    }

    /// `docker.io/library/busybox` → `busybox`; others unchanged.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path.strip_prefix("library/").unwrap_or(&self.path).to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// Fully qualified name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox:latest` (docker's RepoTags form).
    pub fn familiar_tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.familiar_name()))
    }

    /// The host to contact: Docker Hub's API lives on registry-1.docker.io.
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN { "registry-1.docker.io" } else { &self.domain }
    }

    /// Tag or digest to ask the registry for.
    pub fn object(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or(DEFAULT_TAG)
    }

    /// Store key for a tag: `docker.io/library/busybox:latest`.
    pub fn tag_key(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    b.iter().all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == b'.' || x == b'_' || x == b'-')
}

pub fn validate_digest(d: &str) -> Result<()> {
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) => Ok(()),
        _ => Err(Error::invalid(format!("invalid digest {d:?}: only sha256:<64 hex> is supported"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar_tagged().unwrap(), "busybox:latest");
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        let r = Reference::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!((r.domain.as_str(), r.path.as_str(), r.tag.as_deref()), ("127.0.0.1:5000", "a/b", Some("v1")));
        assert_eq!(r.familiar_tagged().unwrap(), "127.0.0.1:5000/a/b:v1");
        let r = Reference::parse("localhost/x").unwrap();
        assert_eq!(r.domain, "localhost");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("user/img@{d}")).unwrap();
        assert_eq!((r.path.as_str(), r.tag.as_deref(), r.digest.as_deref()), ("user/img", None, Some(d.as_str())));
        assert_eq!(Reference::parse("index.docker.io/library/alpine:3").unwrap().familiar_tagged().unwrap(), "alpine:3");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "UPPER", "a//b", "a:", "a:-x", "-a", "a@sha256:xyz", "a/b:c/d"] {
            assert!(Reference::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
