//! The embedded metadata store (redb): every user-visible change is one transaction, so a
//! `kill -9` at any moment leaves either the old or the new state, never a mix.

use crate::errors::{Error, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

/// Image ID (`sha256:…` of the config) → `ImageRecord` JSON.
pub const IMAGES: Table = Table(TableDefinition::new("images"));
/// Tag key (`docker.io/library/busybox:latest`) → image ID.
pub const TAGS: Table = Table(TableDefinition::new("tags"));
/// Chain ID → `SnapshotRecord` JSON.
pub const SNAPSHOTS: Table = Table(TableDefinition::new("snapshots"));
/// Counters and settings.
pub const META: Table = Table(TableDefinition::new("meta"));

#[derive(Clone, Copy)]
pub struct Table(TableDefinition<'static, &'static str, &'static [u8]>);

impl Table {
    pub const fn new(name: &'static str) -> Table {
        Table(TableDefinition::new(name))
    }
}

pub struct Store {
    db: Database,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        // redb's default page cache is up to 1 GiB; berthd's metadata is small.
        let db = redb::Builder::new().set_cache_size(16 << 20).create(path).map_err(|e| Error::internal(format!("opening {}: {e}", path.display())))?;
        let s = Store { db };
        // Create the tables so readers never see "table does not exist".
        s.write(|w| {
            for t in [IMAGES, TAGS, SNAPSHOTS, META] {
                w.tx.open_table(t.0)?;
            }
            Ok(())
        })?;
        Ok(s)
    }

    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(table.0)?;
        match t.get(key)? {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(table.0)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_string(), decode(k.value(), v.value())?));
        }
        Ok(out)
    }

    /// Run `f` in one write transaction; it commits only if `f` returns Ok.
    pub fn write<R>(&self, f: impl FnOnce(&mut Writer) -> Result<R>) -> Result<R> {
        let tx = self.db.begin_write()?;
        let mut w = Writer { tx };
        let out = f(&mut w)?;
        w.tx.commit()?;
        Ok(out)
    }
}

pub struct Writer {
    tx: redb::WriteTransaction,
}

impl Writer {
    pub fn get<T: DeserializeOwned>(&mut self, table: Table, key: &str) -> Result<Option<T>> {
        let t = self.tx.open_table(table.0)?;
        let v = t.get(key)?;
        match v {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::internal(e.to_string()))?;
        let mut t = self.tx.open_table(table.0)?;
        t.insert(key, bytes.as_slice())?;
        Ok(())
    }

    pub fn delete(&mut self, table: Table, key: &str) -> Result<bool> {
        let mut t = self.tx.open_table(table.0)?;
        let old = t.remove(key)?;
        Ok(old.is_some())
    }

    pub fn list<T: DeserializeOwned>(&mut self, table: Table) -> Result<Vec<(String, T)>> {
        let t = self.tx.open_table(table.0)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_string(), decode(k.value(), v.value())?));
        }
        Ok(out)
    }

    /// Create a table if missing, so readers never see "table does not exist".
    pub fn ensure_table(&mut self, table: Table) -> Result<()> {
        self.tx.open_table(table.0)?;
        Ok(())
    }

    /// Next value of a named counter (snapshot directory numbers).
    pub fn next_id(&mut self, name: &str) -> Result<u64> {
        let n: u64 = self.get(META, name)?.unwrap_or(0) + 1;
        self.put(META, name, &n)?;
        Ok(n)
    }
}

fn decode<T: DeserializeOwned>(key: &str, v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| Error::internal(format!("metadata store: record {key:?} is corrupt: {e}")))
}
