//! Content-addressed blob store: `content/blobs/sha256/<hex>`. A blob is written under
//! `content/ingest/`, verified against its digest and size, then renamed into place, so a blob
//! path only ever holds verified bytes.

use crate::errors::{Error, IoContext, Result};
use crate::reference::validate_digest;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub struct ContentStore {
    root: PathBuf,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).expect("getrandom");
    hex::encode(b)
}

impl ContentStore {
    pub fn open(root: PathBuf) -> Result<Self> {
        fs::create_dir_all(root.join("blobs/sha256")).at(&root)?;
        fs::create_dir_all(root.join("ingest")).at(&root)?;
        Ok(ContentStore { root })
    }

    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        validate_digest(digest)?;
        Ok(self.root.join("blobs/sha256").join(&digest[7..]))
    }

    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    pub fn size(&self, digest: &str) -> Result<u64> {
        let p = self.path(digest)?;
        Ok(fs::metadata(&p).at(&p)?.len())
    }

    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let p = self.path(digest)?;
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format!("blob {digest} is not in the content store")),
            _ => Error::internal(format!("{}: {e}", p.display())),
        })
    }

    /// Read a small blob (manifest, config), refusing anything over `limit` bytes.
    pub fn read(&self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open_blob(digest)?.take(limit + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > limit {
            return Err(Error::invalid(format!("blob {digest} is larger than {limit} bytes")));
        }
        Ok(buf)
    }

    /// Store bytes whose digest we compute (configs and manifests berth writes itself) or check.
    pub fn put(&self, bytes: &[u8], expected: Option<&str>) -> Result<String> {
        let digest = sha256_digest(bytes);
        if let Some(e) = expected {
            if e != digest {
                return Err(Error::invalid(format!("digest mismatch: expected {e}, got {digest}")));
            }
        }
        if !self.has(&digest) {
            let mut w = self.ingest(Some(&digest), Some(bytes.len() as u64))?;
            w.write_all(bytes)?;
            w.commit()?;
        }
        Ok(digest)
    }

    /// Start writing a blob. With `expected` digest/size, commit verifies them; without, the
    /// digest is whatever was written.
    pub fn ingest(&self, expected: Option<&str>, size: Option<u64>) -> Result<Ingest> {
        if let Some(d) = expected {
            validate_digest(d)?;
        }
        let path = self.root.join("ingest").join(random_hex(12));
        let file = File::options().write(true).create_new(true).open(&path).at(&path)?;
        Ok(Ingest {
            store_root: self.root.clone(),
            path,
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            hasher: Sha256::new(),
            written: 0,
            expected: expected.map(str::to_string),
            size,
        })
    }

    pub fn delete(&self, digest: &str) -> Result<()> {
        let p = self.path(digest)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::internal(format!("{}: {e}", p.display()))),
            _ => Ok(()),
        }
    }

    pub fn list(&self) -> Result<Vec<String>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).at(&dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            out.push(format!("sha256:{name}"));
        }
        Ok(out)
    }

    /// Start-up: half-written blobs from a previous life are dropped.
    pub fn clean_ingest(&self) -> Result<usize> {
        let dir = self.root.join("ingest");
        let mut n = 0;
        for e in fs::read_dir(&dir).at(&dir)? {
            let p = e?.path();
            if fs::remove_file(&p).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A blob being written. Dropped without `commit`, it leaves nothing behind.
pub struct Ingest {
    store_root: PathBuf,
    path: PathBuf,
    file: Option<io::BufWriter<File>>,
    hasher: Sha256,
    written: u64,
    expected: Option<String>,
    size: Option<u64>,
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.size {
            if self.written + buf.len() as u64 > limit {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("blob is larger than its declared size {limit}")));
            }
        }
        let n = self.file.as_mut().expect("ingest used after commit").write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Ingest {
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verify and move into place; returns the digest.
    pub fn commit(mut self) -> Result<String> {
        let f = self.file.take().expect("commit twice");
        f.into_inner().map_err(|e| Error::internal(e.to_string()))?;
        let digest = format!("sha256:{}", hex::encode(std::mem::take(&mut self.hasher).finalize()));
        if let Some(size) = self.size {
            if self.written != size {
                return Err(Error::internal(format!("blob {}: got {} bytes, expected {size}", self.expected.as_deref().unwrap_or(&digest), self.written)));
            }
        }
        if let Some(e) = &self.expected {
            if *e != digest {
                return Err(Error::internal(format!("digest mismatch: expected {e}, got {digest}")));
            }
        }
        let dst = self.store_root.join("blobs/sha256").join(&digest[7..]);
        fs::rename(&self.path, &dst).at(&dst)?;
        Ok(digest)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.file.is_some() || self.path.exists() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub fn ensure_dir(p: &Path) -> Result<()> {
    fs::create_dir_all(p).at(p)
}
