//! OCI image layouts written by hand (blobs, config, manifest, index.json), for layers that
//! no well-behaved tool would make: tar entries whose names and link targets are written
//! byte for byte, unchecked.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::json;

/// A tar archive built entry by entry, names and link names copied in verbatim (no
/// normalisation, `..` and leading `/` kept), so tests can make hostile layers.
pub struct RawTar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for RawTar {
    fn default() -> Self {
        Self::new()
    }
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar { b: tar::Builder::new(Vec::new()) }
    }

    fn header(name: &str, kind: tar::EntryType, link: &str, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            assert!(name.len() <= old.name.len(), "name too long for a raw ustar entry: {name}");
            assert!(link.len() <= old.linkname.len(), "link name too long: {link}");
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h.set_cksum();
        h
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let h = Self::header(name, tar::EntryType::Regular, "", 0o644, data.len() as u64);
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let h = Self::header(name, tar::EntryType::Directory, "", mode, 0);
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::header(name, tar::EntryType::Symlink, target, 0o777, 0);
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::header(name, tar::EntryType::Link, target, 0o644, 0);
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn put_blob(layout: &Path, data: &[u8]) -> String {
    let hex = super::sha256_hex(data);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&hex), data).unwrap();
    format!("sha256:{hex}")
}

/// Writes an OCI image layout at `layout` whose image `tag` has the given layers
/// (uncompressed tars, bottom first; stored gzip-compressed). Returns the config digest.
pub fn write_layout(layout: &Path, tag: &str, layers: &[Vec<u8>]) -> String {
    fs::create_dir_all(layout).unwrap();
    fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for l in layers {
        diff_ids.push(format!("sha256:{}", super::sha256_hex(l)));
        let gz = gzip(l);
        let digest = put_blob(layout, &gz);
        descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest,
            "size": gz.len(),
        }));
    }
    let config = serde_json::to_vec(&json!({
        "created": "2023-11-14T22:13:20Z",
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": layers.iter().map(|_| json!({"created_by": "berth test: hand-made layer"})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let config_digest = put_blob(layout, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descs,
    }))
    .unwrap();
    let manifest_digest = put_blob(layout, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    config_digest
}
