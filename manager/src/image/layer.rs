//! Unpacking one layer as its bytes arrive: the compressed stream is written to the content
//! store and hashed (blob digest), decompressed, hashed again (diff ID) and applied to a fresh
//! snapshot, all in one pass. Nothing is committed unless both digests verify.

use crate::content::{ContentStore, Ingest};
use crate::errors::{Error, Result};
use crate::snapshot::{apply, Prepared, Snapshots};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

/// Reads the chunks an async task feeds it (blocking side of a tokio channel).
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChannelReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        ChannelReader { rx, cur: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Copies everything read into the blob being ingested (which hashes and size-checks it).
struct Tee<'a, R> {
    inner: R,
    sink: Option<&'a mut Ingest>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(s) = self.sink.as_mut() {
            s.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Hashes what passes through (the uncompressed tar: the diff ID).
pub struct HashReader<R> {
    pub inner: R,
    pub hasher: Sha256,
    pub count: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Look at the magic bytes rather than trusting the media type alone.
pub fn sniff<R: BufRead>(r: &mut R) -> io::Result<Compression> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

pub fn decompressor<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match sniff(&mut r)? {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::None => Box::new(r),
    })
}

pub struct Unpacked {
    pub prepared: Prepared,
    pub diff_id: String,
    pub size: u64,
}

/// Apply a (possibly compressed) layer stream to a new snapshot. With `ingest`, the raw stream
/// is stored as a blob too (verified at commit by the caller). `expect_diff_id` is checked.
pub fn unpack(
    snapshots: &Snapshots,
    stream: impl Read,
    ingest: Option<&mut Ingest>,
    expect_diff_id: Option<&str>,
    lowers: &[PathBuf],
) -> Result<Unpacked> {
    let prepared = snapshots.prepare()?;
    let mut tee = Tee { inner: stream, sink: ingest };
    let (diff_id, stats) = {
        let buffered = BufReader::with_capacity(256 * 1024, &mut tee);
        let dec = decompressor(buffered).map_err(|e| Error::invalid(format!("layer: {e}")))?;
        let mut h = HashReader { inner: dec, hasher: Sha256::new(), count: 0 };
        let stats = apply::apply_layer(&mut h, &prepared.fs(), lowers).map_err(|e| Error::invalid(format!("layer: {e}")))?;
        // The tar's end-of-archive padding is part of the diff ID.
        io::copy(&mut h, &mut io::sink()).map_err(|e| Error::invalid(format!("layer: {e}")))?;
        (format!("sha256:{}", hex::encode(h.hasher.finalize())), stats)
    };
    // Whatever follows the compressed stream still belongs to the blob digest.
    io::copy(&mut tee, &mut io::sink()).map_err(|e| Error::invalid(format!("layer: {e}")))?;
    if let Some(want) = expect_diff_id {
        if want != diff_id {
            return Err(Error::internal(format!("layer diff ID mismatch: the image config says {want}, the layer is {diff_id}")));
        }
    }
    Ok(Unpacked { prepared, diff_id, size: stats.bytes })
}

/// Unpack a layer whose blob is already in the content store.
pub fn unpack_from_store(content: &ContentStore, snapshots: &Snapshots, digest: &str, diff_id: &str, lowers: &[PathBuf]) -> Result<Unpacked> {
    let f = content.open_blob(digest)?;
    unpack(snapshots, f, None, Some(diff_id), lowers)
}
