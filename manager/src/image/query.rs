//! Read-side of the image service: list, inspect, history, disk usage, search, prune.

use super::{familiar_key, ImageRecord, ImageService};
use crate::errors::{Error, Result};
use crate::store::IMAGES;
use bollard_stubs::models::{
    DriverData, ImageConfig, ImageHistoryResponseItem, ImageInspect, ImageInspectMetadata, ImageInspectRootFs, ImagePruneResponse, ImageSearchResponseItem,
    ImageSummary, ImageDeleteResponseItem,
};
use std::collections::HashMap;

/// `filters` of /images/json and /images/prune, as Docker encodes them: `{"name": ["v", …]}`
/// (older clients send `{"name": {"v": true}}`).
#[derive(Default, Debug)]
pub struct ListFilters(pub HashMap<String, Vec<String>>);

impl ListFilters {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        let f = Self::parse_any(s)?;
        for k in f.0.keys() {
            if !["dangling", "reference", "label", "before", "since", "until"].contains(&k.as_str()) {
                return Err(Error::invalid(format!("invalid filter '{k}'")));
            }
        }
        Ok(f)
    }

    /// Parse without checking the names (each endpoint knows its own).
    pub fn parse_any(s: Option<&str>) -> Result<Self> {
        let Some(s) = s.filter(|s| !s.is_empty()) else { return Ok(Self::default()) };
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| Error::invalid(format!("invalid filters: {e}")))?;
        let mut out = HashMap::new();
        let obj = v.as_object().ok_or_else(|| Error::invalid("invalid filters: expected a JSON object"))?;
        for (k, v) in obj {
            let vals = match v {
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                serde_json::Value::Object(o) => o.keys().cloned().collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => return Err(Error::invalid(format!("invalid filter {k:?}"))),
            };
            out.insert(k.clone(), vals);
        }
        Ok(ListFilters(out))
    }
    fn get(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Docker's reference filter: a glob on the familiar name (and name:tag).
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

fn unix(ts: Option<&str>) -> i64 {
    ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.timestamp()).unwrap_or(0)
}

impl ImageService {
    fn all_tags(&self) -> Result<HashMap<String, Vec<String>>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, id) in self.store.list::<String>(crate::store::TAGS)? {
            m.entry(id).or_default().push(familiar_key(&k));
        }
        for v in m.values_mut() {
            v.sort();
        }
        Ok(m)
    }

    fn summary(&self, rec: &ImageRecord, tags: &[String]) -> Result<ImageSummary> {
        let cfg = self.config_json(rec)?;
        let labels = cfg.pointer("/config/Labels").and_then(|l| serde_json::from_value::<HashMap<String, String>>(l.clone()).ok()).unwrap_or_default();
        Ok(ImageSummary {
            id: rec.id.clone(),
            parent_id: rec.parent.clone().unwrap_or_default(),
            repo_tags: tags.to_vec(),
            repo_digests: rec.repo_digests.iter().map(|d| familiar_key(d)).collect(),
            created: unix(cfg.get("created").and_then(|c| c.as_str())),
            size: rec.size as i64,
            shared_size: -1,
            labels,
            containers: -1,
            ..Default::default()
        })
    }

    /// `images`; without `all`, build steps (untagged images some other image is built on)
    /// are left out, as Docker does.
    pub fn list(&self, filters: &ListFilters, all: bool) -> Result<Vec<ImageSummary>> {
        let tags = self.all_tags()?;
        let records = self.store.list::<ImageRecord>(IMAGES)?;
        let parents: std::collections::HashSet<&str> = records.iter().filter_map(|(_, r)| r.parent.as_deref()).collect();
        let mut out = Vec::new();
        for (_, rec) in &records {
            let t = tags.get(&rec.id).cloned().unwrap_or_default();
            if !all && t.is_empty() && parents.contains(rec.id.as_str()) {
                continue;
            }
            let s = self.summary(rec, &t)?;
            if self.matches(&s, filters)? {
                out.push(s);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Whether some image was built or committed on this one.
    pub fn has_children(&self, id: &str) -> Result<bool> {
        Ok(self.store.list::<ImageRecord>(IMAGES)?.iter().any(|(_, r)| r.parent.as_deref() == Some(id)))
    }

    /// Bytes held by unpacked layers.
    pub fn disk_usage_bytes(&self) -> Result<u64> {
        Ok(self.store.list::<crate::snapshot::SnapshotRecord>(crate::store::SNAPSHOTS)?.iter().map(|(_, s)| s.size).sum())
    }

    fn matches(&self, s: &ImageSummary, f: &ListFilters) -> Result<bool> {
        for d in f.get("dangling") {
            let want = match d.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(Error::invalid(format!("invalid filter 'dangling={d}'"))),
            };
            if s.repo_tags.is_empty() != want {
                return Ok(false);
            }
        }
        let refs = f.get("reference");
        if !refs.is_empty() {
            let hit = refs.iter().any(|p| s.repo_tags.iter().any(|t| glob(p, t) || t.rsplit_once(':').is_some_and(|(n, _)| glob(p, n))));
            if !hit {
                return Ok(false);
            }
        }
        for l in f.get("label") {
            let ok = match l.split_once('=') {
                Some((k, v)) => s.labels.get(k).is_some_and(|x| x == v),
                None => s.labels.contains_key(l.as_str()),
            };
            if !ok {
                return Ok(false);
            }
        }
        for (key, newer) in [("before", false), ("since", true)] {
            for name in f.get(key) {
                let other = self.resolve(name)?;
                let oc = unix(self.config_json(&other)?.get("created").and_then(|c| c.as_str()));
                if (newer && s.created <= oc) || (!newer && s.created >= oc) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    pub fn inspect(&self, name: &str) -> Result<ImageInspect> {
        let rec = self.resolve(name)?;
        let cfg = self.config_json(&rec)?;
        let tags = self.all_tags()?.remove(&rec.id).unwrap_or_default();
        let config: Option<ImageConfig> = cfg.get("config").and_then(|c| serde_json::from_value(c.clone()).ok());
        let s = |k: &str| cfg.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let lowers = match rec.chain_ids.last() {
            Some(top) => self.snapshots.lowers(&self.store, top)?,
            None => vec![],
        };
        let mut gd = HashMap::new();
        gd.insert("LowerDir".to_string(), lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"));
        let comment = cfg.get("history").and_then(|h| h.as_array()).and_then(|h| h.last()).and_then(|h| h.get("comment")).and_then(|c| c.as_str()).map(str::to_string);
        Ok(ImageInspect {
            id: Some(rec.id.clone()),
            repo_tags: Some(tags),
            repo_digests: Some(rec.repo_digests.iter().map(|d| familiar_key(d)).collect()),
            comment: Some(comment.unwrap_or_default()),
            created: s("created"),
            author: Some(s("author").unwrap_or_default()),
            config,
            architecture: s("architecture"),
            variant: s("variant"),
            os: s("os"),
            size: Some(rec.size as i64),
            graph_driver: Some(DriverData { name: "overlay2".into(), data: gd }),
            root_fs: Some(ImageInspectRootFs { typ: "layers".into(), layers: Some(rec.layers.iter().map(|l| l.diff_id.clone()).collect()) }),
            metadata: Some(ImageInspectMetadata { last_tag_time: rec.last_tag_time.clone() }),
            ..Default::default()
        })
    }

    pub fn history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>> {
        let rec = self.resolve(name)?;
        let cfg = self.config_json(&rec)?;
        let tags = self.all_tags()?.remove(&rec.id).unwrap_or_default();
        let hist = cfg.get("history").and_then(|h| h.as_array()).cloned().unwrap_or_default();
        let mut sizes = rec.chain_ids.iter().map(|c| self.snapshots.get(&self.store, c).ok().flatten().map(|s| s.size as i64).unwrap_or(0));
        let mut items: Vec<ImageHistoryResponseItem> = hist
            .iter()
            .map(|h| {
                let empty = h.get("empty_layer").and_then(|e| e.as_bool()).unwrap_or(false);
                ImageHistoryResponseItem {
                    id: "<missing>".into(),
                    created: unix(h.get("created").and_then(|c| c.as_str())),
                    created_by: h.get("created_by").and_then(|c| c.as_str()).unwrap_or("").into(),
                    tags: vec![],
                    size: if empty { 0 } else { sizes.next().unwrap_or(0) },
                    comment: h.get("comment").and_then(|c| c.as_str()).unwrap_or("").into(),
                }
            })
            .collect();
        if items.is_empty() {
            items.push(ImageHistoryResponseItem { id: String::new(), created: unix(cfg.get("created").and_then(|c| c.as_str())), created_by: String::new(), tags: vec![], size: rec.size as i64, comment: String::new() });
        }
        // Images built or committed here know their parent: each one owns the last entry of
        // its own history, so the steps that still exist show their IDs, as Docker shows them.
        let all_tags = self.all_tags()?;
        let mut cur = rec.parent.as_deref().and_then(|p| self.get_record(p).ok());
        while let Some(p) = cur {
            let n = self.config_json(&p)?.get("history").and_then(|h| h.as_array()).map(|a| a.len()).unwrap_or(0);
            match n.checked_sub(1).and_then(|i| items.get_mut(i)) {
                Some(it) if it.id == "<missing>" => {
                    it.id = p.id.clone();
                    it.tags = all_tags.get(&p.id).cloned().unwrap_or_default();
                }
                _ => break,
            }
            cur = p.parent.as_deref().and_then(|q| self.get_record(q).ok());
        }
        items.reverse();
        items[0].id = rec.id.clone();
        items[0].tags = tags;
        Ok(items)
    }

    /// Images no container uses: untagged ones, or with `dangling=false` all of them.
    pub async fn prune(&self, filters: &ListFilters) -> Result<ImagePruneResponse> {
        let dangling_only = !filters.get("dangling").iter().any(|d| d == "false" || d == "0");
        let mut deleted: Vec<ImageDeleteResponseItem> = Vec::new();
        let before: u64 = self.store.list::<crate::snapshot::SnapshotRecord>(crate::store::SNAPSHOTS)?.iter().map(|(_, s)| s.size).sum();
        let mut f = ListFilters(filters.0.clone());
        f.0.remove("dangling");
        f.0.remove("until");
        for s in self.list(&f, true)? {
            // Dangling means untagged *and* a head: a build step under another image is
            // that image's cache, not garbage (Docker prunes heads only).
            if (dangling_only && (!s.repo_tags.is_empty() || self.has_children(&s.id)?)) || self.used_by(&s.id).is_some() {
                continue;
            }
            let items = self.remove(&s.id, true).await?;
            deleted.extend(items);
        }
        self.gc().await?;
        let after: u64 = self.store.list::<crate::snapshot::SnapshotRecord>(crate::store::SNAPSHOTS)?.iter().map(|(_, s)| s.size).sum();
        Ok(ImagePruneResponse { images_deleted: Some(deleted), space_reclaimed: Some(before.saturating_sub(after) as i64) })
    }

    pub fn layers_size(&self) -> Result<i64> {
        Ok(self.store.list::<crate::snapshot::SnapshotRecord>(crate::store::SNAPSHOTS)?.iter().map(|(_, s)| s.size as i64).sum())
    }

    /// `search TERM`: a registry's catalog, filtered by the term (`127.0.0.1:5000/bus`).
    pub async fn search(&self, term: &str, limit: usize, creds: Option<crate::distribution::Credentials>) -> Result<Vec<ImageSearchResponseItem>> {
        let (domain, needle) = match term.split_once('/') {
            Some((d, rest)) if d.contains('.') || d.contains(':') || d == "localhost" => (d.to_string(), rest.to_string()),
            _ => (crate::reference::DEFAULT_DOMAIN.to_string(), term.to_string()),
        };
        if domain == crate::reference::DEFAULT_DOMAIN {
            return Err(Error::new(crate::errors::Kind::NotImplemented, "searching Docker Hub is not supported; name a registry: berth search REGISTRY/TERM"));
        }
        let repos = self.registry.catalog(&domain, creds).await?;
        Ok(repos
            .into_iter()
            .filter(|r| r.contains(&needle))
            .take(limit.max(1))
            .map(|r| ImageSearchResponseItem { name: Some(format!("{domain}/{r}")), description: Some(String::new()), is_official: Some(false), star_count: Some(0), ..Default::default() })
            .collect())
    }
}
