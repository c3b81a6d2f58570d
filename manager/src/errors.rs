//! berthd's error type. Each service returns it; the API edge maps the kind to an HTTP status once.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 400: a malformed request, reference, flag or body.
    InvalidArgument,
    /// 401: the registry refused our credentials.
    Unauthorized,
    /// 403: the object may not be changed (a predefined network).
    Forbidden,
    /// 404: no such image, tag, blob, manifest.
    NotFound,
    /// 409: the name is taken, the object is in use.
    Conflict,
    /// 500: the registry misbehaved, a digest did not verify, I/O failed.
    Internal,
    /// 501: not supported by berth (yet).
    NotImplemented,
}

#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(Kind::InvalidArgument, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(Kind::Internal, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(Kind::Unauthorized, m)
    }
    /// Prefix the message with what we were doing, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error { kind: self.kind, message: format!("{what}: {}", self.message) }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal(e.to_string())
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::internal(format!("metadata store: {e}"))
    }
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::from(redb::Error::from(e)) }
        }
    )*};
}
redb_from!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid(format!("invalid JSON: {e}"))
    }
}

/// Attach a path to an I/O error.
pub trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}
impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::internal(format!("{}: {e}", path.display())))
    }
}
