//! Streams over hijacked connections (attach, exec start) and log bodies: docker's 8-byte
//! multiplexed framing when there is no TTY, the copy loops between the local terminal and
//! the container, half-close when local input ends, and the detach key sequence.

use std::io::Write;

use bytes::Bytes;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::client::{ClientError, Hijacked};
use crate::tty;

/// Stream numbers in docker's multiplexed framing.
pub const STREAM_STDIN: u8 = 0;
pub const STREAM_STDOUT: u8 = 1;
pub const STREAM_STDERR: u8 = 2;
pub const STREAM_SYSTEMERR: u8 = 3;

/// docker's default detach sequence, ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DemuxError {
    #[error("Unrecognized input header: {0}")]
    BadStream(u8),
    #[error("error from daemon in stream: {0}")]
    Daemon(String),
}

/// Receives demultiplexed payload: `(stream, bytes)`.
pub type Sink<'a, E> = dyn FnMut(u8, &[u8]) -> Result<(), E> + 'a;

/// Splits docker's multiplexed stream (`[stream, 0, 0, 0, size as u32 BE]` then `size`
/// bytes, repeated) into payload pieces as bytes arrive, without waiting for whole frames.
#[derive(Debug, Default)]
pub struct Demux {
    header: [u8; 8],
    have: usize,
    stream: u8,
    remaining: usize,
    system_error: Vec<u8>,
}

impl Demux {
    pub fn new() -> Demux {
        Demux::default()
    }

    /// Feeds bytes; `out(stream, payload)` receives every piece of payload (stdin frames are
    /// reported as stdout, as docker's StdCopy does).
    pub fn feed<E>(
        &mut self,
        mut data: &[u8],
        out: &mut Sink<'_, E>,
    ) -> Result<(), FeedError<E>> {
        while !data.is_empty() {
            if self.remaining == 0 {
                let take = (8 - self.have).min(data.len());
                self.header[self.have..self.have + take].copy_from_slice(&data[..take]);
                self.have += take;
                data = &data[take..];
                if self.have < 8 {
                    return Ok(());
                }
                self.have = 0;
                self.stream = self.header[0];
                self.remaining = u32::from_be_bytes([self.header[4], self.header[5], self.header[6], self.header[7]]) as usize;
                if !matches!(self.stream, STREAM_STDIN | STREAM_STDOUT | STREAM_STDERR | STREAM_SYSTEMERR) {
                    return Err(FeedError::Demux(DemuxError::BadStream(self.stream)));
                }
                continue;
            }
            let take = self.remaining.min(data.len());
            let (piece, rest) = data.split_at(take);
            data = rest;
            self.remaining -= take;
            match self.stream {
                STREAM_SYSTEMERR => {
                    self.system_error.extend_from_slice(piece);
                    if self.remaining == 0 {
                        let msg = String::from_utf8_lossy(&self.system_error).into_owned();
                        return Err(FeedError::Demux(DemuxError::Daemon(msg)));
                    }
                }
                STREAM_STDERR => out(STREAM_STDERR, piece).map_err(FeedError::Sink)?,
                _ => out(STREAM_STDOUT, piece).map_err(FeedError::Sink)?,
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub enum FeedError<E> {
    Demux(DemuxError),
    Sink(E),
}

/// Finds the detach sequence in typed input. Bytes that may start the sequence are held
/// back until the next byte tells; if it does not complete, they are sent after all.
#[derive(Debug)]
pub struct EscapeFilter {
    keys: Vec<u8>,
    matched: usize,
}

impl EscapeFilter {
    pub fn new(keys: &[u8]) -> EscapeFilter {
        EscapeFilter {
            keys: keys.to_vec(),
            matched: 0,
        }
    }

    /// Returns the bytes to forward, and whether the sequence completed (the bytes after it
    /// are dropped, as the session ends there).
    pub fn filter(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len() + self.matched);
        if self.keys.is_empty() {
            out.extend_from_slice(data);
            return (out, false);
        }
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            if self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    if self.keys.len() == 1 {
                        return (out, true);
                    }
                    continue;
                }
            }
            out.push(b);
        }
        (out, false)
    }
}

/// docker's `--detach-keys` syntax: comma-separated `ctrl-<x>` (x in a-z, @, [, \, ], ^, _)
/// or single characters.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for key in spec.split(',') {
        if key.chars().count() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        let lower = key.to_lowercase();
        let Some(rest) = lower.strip_prefix("ctrl-") else {
            return Err(format!("Unknown character: '{key}'"));
        };
        let code = match rest.as_bytes() {
            [c @ b'a'..=b'z'] => c - b'a' + 1,
            [b'@'] => 0,
            [b'['] => 27,
            [b'\\'] => 28,
            [b']'] => 29,
            [b'^'] => 30,
            [b'_'] => 31,
            _ => return Err(format!("Unknown character: '{key}'")),
        };
        out.push(code);
    }
    Ok(out)
}

/// The local standard input, read on its own thread (a blocking read must not hold the
/// async runtime, nor keep the process alive once we are done), delivered in chunks.
pub fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: read(2) into a buffer we own, of its length.
            let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if n == 0 || tx.blocking_send(buf[..n as usize].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// How to run the two directions of a stream.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Send the local stdin.
    pub stdin: bool,
    /// Show the container's stdout / stderr.
    pub stdout: bool,
    pub stderr: bool,
    /// The container has a TTY: output is raw (all of it on stdout), input goes through the
    /// detach filter and the local terminal is made raw.
    pub tty: bool,
    pub detach_keys: Vec<u8>,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The daemon closed the output (the process ended, or it detached us).
    Closed,
    /// The user typed the detach sequence.
    Detached,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Demux(#[from] DemuxError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Client(#[from] ClientError),
}

fn write_out(stream: u8, data: &[u8]) -> std::io::Result<()> {
    if stream == STREAM_STDERR {
        let mut e = std::io::stderr().lock();
        e.write_all(data)?;
        e.flush()
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(data)?;
        o.flush()
    }
}

/// Copies output to the local stdout/stderr (demultiplexed unless `tty`).
async fn pump_output<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    first: Bytes,
    opts: &StreamOptions,
) -> Result<(), StreamError> {
    let mut demux = Demux::new();
    let mut handle = |data: &[u8]| -> Result<(), StreamError> {
        if opts.tty {
            write_out(STREAM_STDOUT, data)?;
            return Ok(());
        }
        let mut sink = |stream: u8, piece: &[u8]| -> std::io::Result<()> {
            match stream {
                STREAM_STDERR if opts.stderr => write_out(STREAM_STDERR, piece),
                STREAM_STDOUT if opts.stdout => write_out(STREAM_STDOUT, piece),
                _ => Ok(()),
            }
        };
        demux.feed(data, &mut sink).map_err(|e| match e {
            FeedError::Demux(d) => StreamError::Demux(d),
            FeedError::Sink(io) => StreamError::Io(io),
        })
    };
    if !first.is_empty() {
        handle(&first)?;
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            // a connection reset after the process ended is the end of the stream
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        handle(&buf[..n])?;
    }
}

/// Runs a hijacked stream to its end, as docker's hijackedIOStreamer: output until the
/// daemon closes it; input until local EOF (then half-close so the process sees EOF) or
/// the detach keys. Without input, the write side is closed at once.
pub async fn stream(conn: Hijacked, opts: &StreamOptions) -> Result<StreamEnd, StreamError> {
    let (stream, buffered) = match conn {
        Hijacked::Upgraded { stream, buffered } => (stream, buffered),
        Hijacked::Body(body) => {
            // No upgrade: output only.
            let reader = BodyReader::new(body);
            pump_output(reader, Bytes::new(), opts).await?;
            return Ok(StreamEnd::Closed);
        }
    };
    let (reader, mut writer) = stream.into_split();
    let raw = if opts.stdin && opts.tty {
        tty::RawMode::enable(tty::STDIN)?
    } else {
        None
    };
    let has_output = opts.stdout || opts.stderr;
    let output = async {
        let r = pump_output(reader, buffered, opts).await;
        // back to a normal terminal as soon as the output ends
        tty::restore();
        r
    };
    let input = async {
        if opts.stdin {
            let mut chunks = stdin_chunks();
            let mut escape = EscapeFilter::new(if opts.tty { &opts.detach_keys } else { &[] });
            while let Some(chunk) = chunks.recv().await {
                let (data, detached) = escape.filter(&chunk);
                if !data.is_empty() && writer.write_all(&data).await.is_err() {
                    break;
                }
                if detached {
                    tty::restore();
                    return StreamEnd::Detached;
                }
            }
        }
        let _ = writer.shutdown().await;
        StreamEnd::Closed
    };
    tokio::pin!(output);
    tokio::pin!(input);
    let result = tokio::select! {
        r = &mut output, if has_output => r.map(|()| StreamEnd::Closed),
        end = &mut input => match end {
            StreamEnd::Detached => Ok(StreamEnd::Detached),
            StreamEnd::Closed if has_output => output.await.map(|()| StreamEnd::Closed),
            StreamEnd::Closed => Ok(StreamEnd::Closed),
        },
    };
    drop(raw);
    result
}

/// Reads a response body as an AsyncRead (for daemons that answer attach with `200`, and
/// for logs).
pub struct BodyReader {
    body: Incoming,
    pending: Bytes,
}

impl BodyReader {
    pub fn new(body: Incoming) -> BodyReader {
        BodyReader {
            body,
            pending: Bytes::new(),
        }
    }
}

impl tokio::io::AsyncRead for BodyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use hyper::body::Body;
        use std::task::Poll;
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let piece = self.pending.split_to(n);
                buf.put_slice(&piece);
                return Poll::Ready(Ok(()));
            }
            match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = data;
                    }
                }
            }
        }
    }
}

/// Copies a log body to stdout/stderr: raw for a TTY container, demultiplexed otherwise.
pub async fn copy_body(body: Incoming, tty: bool) -> Result<(), StreamError> {
    let opts = StreamOptions {
        stdin: false,
        stdout: true,
        stderr: true,
        tty,
        detach_keys: Vec::new(),
    };
    pump_output(BodyReader::new(body), Bytes::new(), &opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn collect(chunks: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>), DemuxError> {
        let mut d = Demux::new();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        for c in chunks {
            let mut sink = |s: u8, p: &[u8]| -> Result<(), ()> {
                if s == STREAM_STDERR {
                    err.extend_from_slice(p)
                } else {
                    out.extend_from_slice(p)
                }
                Ok(())
            };
            match d.feed(c, &mut sink) {
                Ok(()) => {}
                Err(FeedError::Demux(e)) => return Err(e),
                Err(FeedError::Sink(())) => unreachable!(),
            }
        }
        Ok((out, err))
    }

    #[test]
    fn demultiplexes_whole_and_split_frames() {
        let mut data = frame(STREAM_STDOUT, b"hello\n");
        data.extend(frame(STREAM_STDERR, b"oops\n"));
        data.extend(frame(STREAM_STDOUT, b""));
        data.extend(frame(STREAM_STDIN, b"echoed"));
        data.extend(frame(STREAM_STDOUT, &vec![b'x'; 70000]));
        let (out, err) = collect(&[&data]).unwrap();
        assert_eq!(&out[..12], b"hello\nechoed");
        assert_eq!(out.len(), 12 + 70000);
        assert_eq!(err, b"oops\n");
        // the same bytes one at a time, and in odd-sized pieces
        let singles: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(collect(&singles).unwrap(), (out.clone(), err.clone()));
        let odd: Vec<&[u8]> = data.chunks(7).collect();
        assert_eq!(collect(&odd).unwrap(), (out, err));
    }

    #[test]
    fn demux_errors() {
        assert_eq!(collect(&[&frame(9, b"x")]), Err(DemuxError::BadStream(9)));
        let mut data = frame(STREAM_STDOUT, b"partial");
        data.extend(frame(STREAM_SYSTEMERR, b"boom"));
        let e = collect(&[&data[..data.len() - 2], &data[data.len() - 2..]]).unwrap_err();
        assert_eq!(e.to_string(), "error from daemon in stream: boom");
        // a truncated frame at the end is not an error (docker's StdCopy ignores it)
        let f = frame(STREAM_STDOUT, b"abcdef");
        assert_eq!(collect(&[&f[..10]]).unwrap().0, b"ab");
    }

    #[test]
    fn escape_filter() {
        let mut f = EscapeFilter::new(DEFAULT_DETACH_KEYS);
        assert_eq!(f.filter(b"ls\r"), (b"ls\r".to_vec(), false));
        // split across reads
        assert_eq!(f.filter(b"a\x10"), (b"a".to_vec(), false));
        assert_eq!(f.filter(b"\x11rest"), (Vec::new(), true));
        // a lone ctrl-p is sent once the next byte shows it is not the sequence
        let mut f = EscapeFilter::new(DEFAULT_DETACH_KEYS);
        assert_eq!(f.filter(b"\x10"), (Vec::new(), false));
        assert_eq!(f.filter(b"x"), (b"\x10x".to_vec(), false));
        // ctrl-p ctrl-p ctrl-q: the first is data, the last two detach
        let mut f = EscapeFilter::new(DEFAULT_DETACH_KEYS);
        assert_eq!(f.filter(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
        // no keys: everything passes
        let mut f = EscapeFilter::new(&[]);
        assert_eq!(f.filter(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }

    #[test]
    fn detach_key_syntax() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![0x10, 0x11]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-[,ctrl-_").unwrap(), vec![0, 27, 31]);
        assert_eq!(parse_detach_keys("CTRL-Z").unwrap(), vec![26]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("alt-x").is_err());
    }
}
