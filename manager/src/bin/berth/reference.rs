//! Image references as the CLI needs them: `[REGISTRY/]PATH[:TAG][@DIGEST]`, normalised
//! the way docker does (`busybox` is `docker.io/library/busybox`).

pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The key docker's config.json uses for Docker Hub credentials.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub domain: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, String> {
        let bad = |why: &str| format!("invalid reference format: {why}");
        if s.is_empty() {
            return Err(bad("repository name must have at least one component"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let (algo, hex) = d.split_once(':').ok_or_else(|| bad("invalid digest"))?;
                if algo.is_empty() || hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad("invalid digest"));
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name_tag[last_slash + i + 1..];
                if tag.is_empty()
                    || tag.len() > 128
                    || !tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                    || tag.starts_with(['.', '-'])
                {
                    return Err(bad("invalid tag"));
                }
                (&name_tag[..last_slash + i], Some(tag.to_string()))
            }
            None => (name_tag, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        for comp in path.split('/') {
            if comp.is_empty() {
                return Err(bad("repository name components must not be empty"));
            }
            if comp.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(bad(&format!("repository name ({path}) must be lowercase")));
            }
            let ok = comp
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
                && comp.starts_with(|c: char| c.is_ascii_alphanumeric())
                && comp.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                return Err(bad(&format!("invalid repository name component \"{comp}\"")));
            }
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `docker.io/library/busybox`
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox` (what users type and docker prints for Docker Hub images).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path.strip_prefix("library/").unwrap_or(&self.path).to_string()
        } else {
            self.full_name()
        }
    }

    pub fn has_tag_or_digest(&self) -> bool {
        self.tag.is_some() || self.digest.is_some()
    }

    /// The tag, or `latest` when neither a tag nor a digest was given.
    pub fn tag_or_latest(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        }
    }

    /// `docker.io/library/busybox:latest` (digest form when pinned by digest).
    pub fn full_string(&self) -> String {
        let mut s = self.full_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The key under which config.json holds credentials for this image's registry.
    pub fn auth_key(&self) -> String {
        registry_auth_key(&self.domain)
    }
}

/// config.json key for a registry host (`docker.io` → docker's index URL).
pub fn registry_auth_key(domain: &str) -> String {
    match domain {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => INDEX_SERVER.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.full_name(), "docker.io/library/busybox");
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(r.tag_or_latest().as_deref(), Some("latest"));
        assert_eq!(r.auth_key(), INDEX_SERVER);

        let r = Reference::parse("127.0.0.1:5000/busybox:1.36").unwrap();
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.path, "busybox");
        assert_eq!(r.tag.as_deref(), Some("1.36"));
        assert_eq!(r.familiar_name(), "127.0.0.1:5000/busybox");
        assert_eq!(r.auth_key(), "127.0.0.1:5000");

        let r = Reference::parse("localhost/foo/bar@sha256:abcd").unwrap();
        assert_eq!(r.domain, "localhost");
        assert_eq!(r.digest.as_deref(), Some("sha256:abcd"));
        assert_eq!(r.tag_or_latest(), None);

        let r = Reference::parse("user/app:v1").unwrap();
        assert_eq!(r.full_string(), "docker.io/user/app:v1");
        assert_eq!(r.familiar_name(), "user/app");

        assert!(Reference::parse("Busybox").is_err());
        assert!(Reference::parse("a:").is_err());
        assert!(Reference::parse("a@sha256:zz").is_err());
    }
}
