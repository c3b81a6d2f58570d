//! The safe OCI layer applier: unpacks one uncompressed layer tar into a snapshot directory,
//! writing the OCI changeset in overlayfs form so the directory can be used as a lowerdir.
//!
//! # Containment
//!
//! Nothing is ever written outside `root`, whatever the tar holds:
//!
//! * Entry names (and hardlink targets) are normalized lexically before use: leading `/`, empty
//!   and `.` components are dropped, and `..` removes the previous component but is *clamped* at
//!   the root (`../escape` -> `escape`, `a/../../x` -> `x`). This is the same rule the kernel
//!   applies to symlinks under `RESOLVE_IN_ROOT`, so names and symlinks behave alike. A name
//!   that normalizes to the root itself (`./`, `/`) is skipped: the caller owns the root's
//!   metadata. Empty names and names containing NUL are rejected.
//! * Every parent directory is resolved with `openat2(root, parent, RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`, so symlinks met on the way (from this layer, e.g. `evil -> /etc`
//!   or `evil -> ../../..`) are resolved as if `root` were `/`: the entry lands inside root.
//!   Missing directories are created one component at a time with `mkdirat` relative to an
//!   already resolved descriptor. A parent that exists but does not resolve to a directory
//!   inside root (a regular file, a symlink loop, or a symlink dangling inside root, such as
//!   `evil -> /<host path that only exists on the host>`) is an error; nothing is created
//!   through it.
//! * The final component is only ever touched with `*at()` calls relative to the resolved
//!   parent that do not follow it (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mkdirat`, `symlinkat`,
//!   `mknodat`, `linkat` without `AT_SYMLINK_FOLLOW`, `AT_SYMLINK_NOFOLLOW` for chown and
//!   utimensat, `O_NOFOLLOW` fds or `lsetxattr` on `/proc/self/fd/<parent>/<name>` for
//!   xattrs). `fchmodat` (which always follows) is only used right after the node was created
//!   or checked with a no-follow `fstatat` not to be a symlink. An existing entry of another
//!   type (e.g. a symlink pointing outside) is unlinked and replaced, never followed.
//! * Hardlink targets are resolved the same way inside `root` (or inside a lower layer's root),
//!   never on the host; a target found nowhere is an error. Lower-layer targets must be regular
//!   files (a whiteout in a higher lower layer means "missing"); they are copied up.
//! * Extended attributes in the `trusted.overlay.` namespace are dropped from the tar: they
//!   would steer overlayfs (redirects, metacopy). Opaque directories come only from
//!   `.wh..wh..opq` markers.
//!
//! Other choices: xattrs a filesystem does not support (EOPNOTSUPP) are skipped, as are
//! `user.*` xattrs on symlinks and device nodes (the kernel refuses them there); all-blank
//! numeric header fields read as 0 (as GNU tar and Go's archive/tar do); PAX global headers
//! are ignored; GNU sparse files are written out in full.
//!
//! Needs Linux >= 5.6 (openat2), /proc (xattrs on symlinks and device nodes), and root. The
//! applier assumes nothing else writes to `root` while it runs (it is a fresh snapshot).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat,
    FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

/// Size of the reused buffer that file contents are copied through.
const COPY_BUF_SIZE: usize = 256 * 1024;
/// Prefix of whiteout entries.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of whiteout "meta" entries (the opaque marker and AUFS-internal names).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// Marks the directory containing it as opaque.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The overlayfs xattr that makes a directory opaque.
const OVERLAY_OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
/// Overlayfs-private xattrs; never taken from a tar or copied between layers.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
/// How often openat2 is retried when the kernel reports a concurrent rename (EAGAIN).
const OPENAT2_RETRIES: usize = 64;

/// What one call to [`apply_layer`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Tar entries processed (files, dirs, links, devices, whiteouts, ...).
    pub entries: u64,
    /// Regular-file content bytes written (including files copied up from a lower layer).
    pub bytes: u64,
}

/// Why a layer could not be applied. Entry paths are shown as they appear in the tar.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The target snapshot directory could not be opened.
    #[error("cannot open layer directory {}: {err}", .root.display())]
    Root { root: PathBuf, err: io::Error },
    /// A parent layer's directory could not be opened.
    #[error("cannot open parent layer directory {}: {err}", .lower.display())]
    Lower { lower: PathBuf, err: io::Error },
    /// The tar stream could not be read or is not a valid tar archive.
    #[error("layer is not a readable tar stream: {err}")]
    Stream { err: io::Error },
    /// A header field (mode, owner, mtime, device numbers) could not be parsed.
    #[error("layer entry {path:?}: malformed tar header: {err}")]
    Header { path: String, err: io::Error },
    /// The entry name (or link target) is unusable.
    #[error("layer entry {path:?}: invalid name: {reason}")]
    InvalidName { path: String, reason: &'static str },
    /// An entry type that has no meaning in an image layer.
    #[error("layer entry {path:?}: unsupported tar entry type {kind:?}")]
    Unsupported { path: String, kind: char },
    /// A hardlink names a file found neither earlier in this layer nor in a parent layer.
    #[error("layer entry {path:?}: hardlink target {target:?} exists neither in this layer nor in any parent layer")]
    LinkTargetMissing { path: String, target: String },
    /// A hardlink names something that cannot be hardlinked (a directory, or a non-regular
    /// file in a parent layer).
    #[error(
        "layer entry {path:?}: hardlink target {target:?} is {what}, which cannot be hardlinked"
    )]
    LinkTargetInvalid {
        path: String,
        target: String,
        what: &'static str,
    },
    /// A system call on the entry failed.
    #[error("layer entry {path:?}: {op}: {err}")]
    Io {
        path: String,
        op: &'static str,
        err: io::Error,
    },
}

impl ApplyError {
    /// The underlying OS or stream error, if there is one (e.g. to tell ENOSPC apart).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            ApplyError::Root { err, .. }
            | ApplyError::Lower { err, .. }
            | ApplyError::Stream { err }
            | ApplyError::Header { err, .. }
            | ApplyError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// Unpack one *uncompressed* layer tar stream into `root` (an existing, empty directory: this
/// layer's snapshot dir, later used as an overlayfs lowerdir). `lowers` are the parent layers'
/// directories, topmost first, used only to resolve hardlinks whose target is in a lower layer.
///
/// Must run as root (ownership, device nodes and `trusted.*` xattrs need it). Reads the archive
/// entries only: whatever follows the end-of-archive marker is left in the stream.
pub fn apply_layer<R: Read>(
    tar: R,
    root: &Path,
    lowers: &[PathBuf],
) -> Result<ApplyStats, ApplyError> {
    apply(tar, root, lowers, true)
}

/// Extract a tar into `root` with the same containment, but as plain files: `.wh.` names are
/// files like any other, not whiteouts (COPY/ADD and cp into a directory, as Docker does).
pub fn extract_plain<R: Read>(tar: R, root: &Path) -> Result<ApplyStats, ApplyError> {
    apply(tar, root, &[], false)
}

fn apply<R: Read>(tar: R, root: &Path, lowers: &[PathBuf], whiteouts: bool) -> Result<ApplyStats, ApplyError> {
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ApplyError::Root {
        root: root.to_path_buf(),
        err: e.into(),
    })?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let root_fd = unsafe { OwnedFd::from_raw_fd(root_fd) };

    let mut applier = Applier {
        root: root_fd,
        whiteouts,
        lowers,
        lower_fds: Vec::new(),
        cache: None,
        cache_stale: false,
        removed_any: false,
        dir_times: Vec::new(),
        buf: vec![0u8; COPY_BUF_SIZE],
        stats: ApplyStats::default(),
    };

    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|err| ApplyError::Stream { err })?;
    for entry in entries {
        let mut entry = entry.map_err(|err| ApplyError::Stream { err })?;
        applier.apply_entry(&mut entry)?;
    }
    applier.finish()?;
    Ok(applier.stats)
}

/// Metadata of one entry, taken from its header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    /// Permission bits including setuid/setgid/sticky.
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// What kind of node an xattr is being set on (some namespaces are not allowed everywhere).
#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    File,
    Dir,
    Symlink,
    Special,
}

/// Where to set an xattr.
enum XattrTarget<'a> {
    /// An fd opened for reading or writing (regular files).
    Fd(RawFd),
    /// A path not followed in its last component (`/proc/self/fd/<parent>/<name>`).
    Path(&'a CStr),
}

struct Applier<'a> {
    root: OwnedFd,
    /// Layer semantics: `.wh.NAME` deletes NAME, `.wh..wh..opq` makes a directory opaque.
    whiteouts: bool,
    lowers: &'a [PathBuf],
    /// Lazily opened O_PATH descriptors of `lowers`.
    lower_fds: Vec<Option<OwnedFd>>,
    /// The last resolved parent directory (normalized path, O_PATH fd).
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Set when something was removed from the tree: the cached resolution may be out of date.
    /// The cached fd is kept open until the next lookup so a caller's borrowed raw fd stays valid.
    cache_stale: bool,
    /// Whether anything was removed or replaced (then deferred dir times re-check the node).
    removed_any: bool,
    /// Directory mtimes to set once all entries are in place (normalized path, mtime).
    dir_times: Vec<(Vec<u8>, TimeSpec)>,
    buf: Vec<u8>,
    stats: ApplyStats,
}

impl Applier<'_> {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            // PAX global headers carry nothing an image layer needs.
            return Ok(());
        }
        self.stats.entries += 1;

        let raw = entry.path_bytes().into_owned();
        let path = normalize(&raw).map_err(|reason| invalid_name(&raw, reason))?;
        if path.is_empty() {
            // The layer root itself (`./`): its metadata belongs to the snapshot's owner.
            return Ok(());
        }
        let (parent, name) = split_parent(&path);

        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX).filter(|_| self.whiteouts) {
            return self.whiteout(&raw, parent, name, hidden);
        }

        let meta = read_meta(entry, &raw)?;
        match kind {
            EntryType::Regular if raw.last() == Some(&b'/') => {
                // Pre-POSIX archivers mark directories only by a trailing slash.
                self.directory(&raw, &path, &meta)
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => self.regular(
                entry,
                &raw,
                parent,
                name,
                &meta,
                kind != EntryType::GNUSparse,
            ),
            EntryType::Directory => self.directory(&raw, &path, &meta),
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.is_empty() {
                    return Err(invalid_name(&raw, "symlink without a target"));
                }
                if target.contains(&0) {
                    return Err(invalid_name(&raw, "symlink target contains a NUL byte"));
                }
                self.symlink(&raw, parent, name, &target, &meta)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                let target = match target {
                    Some(t) if !t.is_empty() => t,
                    _ => return Err(invalid_name(&raw, "hardlink without a target")),
                };
                self.hardlink(&raw, &path, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = if kind == EntryType::Fifo {
                    (SFlag::S_IFIFO, 0)
                } else {
                    let (major, minor) =
                        device_numbers(entry.header()).map_err(|e| header_err(&raw, e))?;
                    let dev = makedev(major, minor);
                    let sflag = if kind == EntryType::Char {
                        SFlag::S_IFCHR
                    } else {
                        SFlag::S_IFBLK
                    };
                    (sflag, dev)
                };
                self.special(&raw, parent, name, sflag, dev, &meta)
            }
            other => Err(ApplyError::Unsupported {
                path: show(&raw),
                kind: char::from(other.as_byte()),
            }),
        }
    }

    /// Returns a descriptor of the (normalized) directory `parent`, creating missing components
    /// when `create` is set. The fd is borrowed from the cache: it stays valid until the next
    /// call of this method.
    fn parent_fd(&mut self, parent: &[u8], create: bool) -> Result<RawFd, Errno> {
        if parent.is_empty() {
            return Ok(self.root.as_raw_fd());
        }
        if !self.cache_stale {
            if let Some((cached, fd)) = &self.cache {
                if cached.as_slice() == parent {
                    return Ok(fd.as_raw_fd());
                }
            }
        }
        let fd = resolve_dir(self.root.as_raw_fd(), parent, create)?;
        let raw = fd.as_raw_fd();
        self.cache = Some((parent.to_vec(), fd));
        self.cache_stale = false;
        Ok(raw)
    }

    fn parent_or_err(&mut self, raw: &[u8], parent: &[u8]) -> Result<RawFd, ApplyError> {
        self.parent_fd(parent, true).map_err(|e| {
            io_err(
                raw,
                "cannot resolve its parent directory inside the layer",
                e,
            )
        })
    }

    /// Removes whatever is at `pfd/name` (recursively for a directory). Absent is fine.
    fn remove_existing(&mut self, pfd: RawFd, name: &[u8]) -> Result<(), Errno> {
        self.cache_stale = true;
        self.removed_any = true;
        match unlinkat(Some(pfd), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => remove_tree(pfd, name),
            Err(e) => Err(e),
        }
    }

    /// Runs `create`; if the name is taken, removes what is there and runs it once more.
    fn create_replacing<T>(
        &mut self,
        pfd: RawFd,
        name: &[u8],
        mut create: impl FnMut() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        match create() {
            Err(Errno::EEXIST) => {
                self.remove_existing(pfd, name)?;
                create()
            }
            other => other,
        }
    }

    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        check_size: bool,
    ) -> Result<(), ApplyError> {
        let pfd = self.parent_or_err(raw, parent)?;
        let file = self
            .create_file(pfd, name)
            .map_err(|e| io_err(raw, "cannot create file", e))?;

        let mut written: u64 = 0;
        let mut out = &file;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(ApplyError::Io {
                        path: show(raw),
                        op: "reading file content from the layer stream",
                        err,
                    })
                }
            };
            out.write_all(&self.buf[..n])
                .map_err(|err| ApplyError::Io {
                    path: show(raw),
                    op: "writing file content",
                    err,
                })?;
            written += n as u64;
        }
        if check_size && written != entry.size() {
            return Err(ApplyError::Io {
                path: show(raw),
                op: "reading file content from the layer stream",
                err: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended after {written} of {} bytes", entry.size()),
                ),
            });
        }
        self.stats.bytes += written;

        let fd = file.as_raw_fd();
        fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(|e| io_err(raw, "cannot set owner", e))?;
        fchmod(fd, Mode::from_bits_retain(meta.mode))
            .map_err(|e| io_err(raw, "cannot set mode", e))?;
        set_xattrs(raw, XattrTarget::Fd(fd), NodeKind::File, &meta.xattrs)?;
        futimens(fd, &meta.mtime, &meta.mtime).map_err(|e| io_err(raw, "cannot set mtime", e))?;
        Ok(())
    }

    /// Creates `pfd/name` as a new empty regular file (replacing whatever was there) and
    /// returns it open for writing.
    fn create_file(&mut self, pfd: RawFd, name: &[u8]) -> Result<File, Errno> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = self.create_replacing(pfd, name, || {
            openat(Some(pfd), name, flags, Mode::from_bits_truncate(0o600))
        })?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn directory(&mut self, raw: &[u8], path: &[u8], meta: &Meta) -> Result<(), ApplyError> {
        let (parent, name) = split_parent(path);
        let pfd = self.parent_or_err(raw, parent)?;
        let mode = Mode::from_bits_truncate(0o700);
        match mkdirat(Some(pfd), name, mode) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let st = fstatat(Some(pfd), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| io_err(raw, "cannot inspect existing entry", e))?;
                if !is_type(&st, libc::S_IFDIR) {
                    // Something other than a directory: replace it. Two directories merge.
                    self.remove_existing(pfd, name)
                        .map_err(|e| io_err(raw, "cannot remove existing entry", e))?;
                    mkdirat(Some(pfd), name, mode)
                        .map_err(|e| io_err(raw, "cannot create directory", e))?;
                }
            }
            Err(e) => return Err(io_err(raw, "cannot create directory", e)),
        }
        fchownat(
            Some(pfd),
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err(raw, "cannot set owner", e))?;
        // Follows, but `name` was just created or checked to be a directory.
        fchmodat(
            Some(pfd),
            name,
            Mode::from_bits_retain(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| io_err(raw, "cannot set mode", e))?;
        if !meta.xattrs.is_empty() {
            let dir = open_dir_fd(pfd, name)
                .map_err(|e| io_err(raw, "cannot open directory to set xattrs", e))?;
            set_xattrs(
                raw,
                XattrTarget::Fd(dir.as_raw_fd()),
                NodeKind::Dir,
                &meta.xattrs,
            )?;
        }
        // Creating children changes a directory's mtime: set it once everything is in place.
        self.dir_times.push((path.to_vec(), meta.mtime));
        Ok(())
    }

    fn symlink(
        &mut self,
        raw: &[u8],
        parent: &[u8],
        name: &[u8],
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), ApplyError> {
        let pfd = self.parent_or_err(raw, parent)?;
        self.create_replacing(pfd, name, || symlinkat(target, Some(pfd), name))
            .map_err(|e| io_err(raw, "cannot create symlink", e))?;
        self.finish_node(raw, pfd, name, NodeKind::Symlink, meta)
    }

    fn special(
        &mut self,
        raw: &[u8],
        parent: &[u8],
        name: &[u8],
        sflag: SFlag,
        dev: libc::dev_t,
        meta: &Meta,
    ) -> Result<(), ApplyError> {
        let pfd = self.parent_or_err(raw, parent)?;
        self.create_replacing(pfd, name, || {
            mknodat(Some(pfd), name, sflag, Mode::from_bits_truncate(0o600), dev)
        })
        .map_err(|e| io_err(raw, "cannot create device node or fifo", e))?;
        self.finish_node(raw, pfd, name, NodeKind::Special, meta)
    }

    /// Owner, mode, xattrs and times of a just-created symlink or special file, by name.
    fn finish_node(
        &mut self,
        raw: &[u8],
        pfd: RawFd,
        name: &[u8],
        kind: NodeKind,
        meta: &Meta,
    ) -> Result<(), ApplyError> {
        fchownat(
            Some(pfd),
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err(raw, "cannot set owner", e))?;
        if kind != NodeKind::Symlink {
            // Follows, but `name` was just created by mknodat: it is not a symlink.
            fchmodat(
                Some(pfd),
                name,
                Mode::from_bits_retain(meta.mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| io_err(raw, "cannot set mode", e))?;
        }
        if !meta.xattrs.is_empty() {
            let p = proc_path(pfd, name).map_err(|e| io_err(raw, "bad name", e))?;
            set_xattrs(raw, XattrTarget::Path(&p), kind, &meta.xattrs)?;
        }
        utimensat(
            Some(pfd),
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| io_err(raw, "cannot set mtime", e))?;
        Ok(())
    }

    /// `DIR/.wh.NAME` (a 0:0 char device at DIR/NAME) and `DIR/.wh..wh..opq` (DIR is opaque).
    fn whiteout(
        &mut self,
        raw: &[u8],
        parent: &[u8],
        name: &[u8],
        hidden: &[u8],
    ) -> Result<(), ApplyError> {
        if name == WHITEOUT_OPAQUE {
            let pfd = self.parent_or_err(raw, parent)?;
            let dir = open_dir_fd(pfd, b".")
                .map_err(|e| io_err(raw, "cannot open directory to mark it opaque", e))?;
            fsetxattr(dir.as_raw_fd(), OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(|e| io_err(raw, "cannot mark directory opaque", e))?;
            return Ok(());
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            // Other AUFS meta entries (.wh..wh.plnk, .wh..wh.aufs) mean nothing to overlayfs.
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(invalid_name(raw, "whiteout without a valid name"));
        }
        let pfd = self.parent_or_err(raw, parent)?;
        self.remove_existing(pfd, hidden)
            .map_err(|e| io_err(raw, "cannot remove the whited-out entry", e))?;
        mknodat(
            Some(pfd),
            hidden,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(|e| io_err(raw, "cannot create whiteout device", e))?;
        Ok(())
    }

    fn hardlink(&mut self, raw: &[u8], path: &[u8], target_raw: &[u8]) -> Result<(), ApplyError> {
        let target = normalize(target_raw).map_err(|reason| invalid_name(raw, reason))?;
        let (tparent, tname) = split_parent(&target);
        let missing = || ApplyError::LinkTargetMissing {
            path: show(raw),
            target: show(target_raw),
        };
        let invalid = |what| ApplyError::LinkTargetInvalid {
            path: show(raw),
            target: show(target_raw),
            what,
        };
        if target.is_empty() {
            return Err(invalid("the layer root directory"));
        }

        // 1. The target is an earlier entry of this layer.
        let root = self.root.as_raw_fd();
        let in_layer = match resolve_dir(root, tparent, false) {
            Ok(tpfd) => {
                match fstatat(Some(tpfd.as_raw_fd()), tname, AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) => Some((tpfd, st)),
                    Err(Errno::ENOENT) => None,
                    Err(e) => return Err(io_err(raw, "cannot inspect hardlink target", e)),
                }
            }
            Err(Errno::ENOENT | Errno::ENOTDIR) => None,
            Err(e) => return Err(io_err(raw, "cannot resolve hardlink target", e)),
        };
        let (parent, name) = split_parent(path);
        if let Some((tpfd, tst)) = in_layer {
            if is_type(&tst, libc::S_IFDIR) {
                return Err(invalid("a directory"));
            }
            if target == path {
                // A link to itself: already in place.
                return Ok(());
            }
            let pfd = self.parent_or_err(raw, parent)?;
            let tpfd = tpfd.as_raw_fd();
            let link = || linkat(Some(tpfd), tname, Some(pfd), name, AtFlags::empty());
            match link() {
                Err(Errno::EEXIST) => {
                    let existing = fstatat(Some(pfd), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map_err(|e| io_err(raw, "cannot inspect existing entry", e))?;
                    if existing.st_dev == tst.st_dev && existing.st_ino == tst.st_ino {
                        return Ok(()); // the name already is this inode
                    }
                    self.remove_existing(pfd, name)
                        .map_err(|e| io_err(raw, "cannot remove existing entry", e))?;
                    link().map_err(|e| io_err(raw, "cannot create hardlink", e))?;
                }
                other => other.map_err(|e| io_err(raw, "cannot create hardlink", e))?,
            }
            return Ok(());
        }

        // 2. The target is in a parent layer: copy it up (first layer that has it wins).
        for i in 0..self.lowers.len() {
            let lfd = self.lower_fd(i)?;
            let tpfd = match resolve_dir(lfd, tparent, false) {
                Ok(fd) => fd,
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(e) => {
                    return Err(io_err(
                        raw,
                        "cannot resolve hardlink target in a parent layer",
                        e,
                    ))
                }
            };
            let st = match fstatat(Some(tpfd.as_raw_fd()), tname, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) => continue,
                Err(e) => {
                    return Err(io_err(
                        raw,
                        "cannot inspect hardlink target in a parent layer",
                        e,
                    ))
                }
            };
            if is_type(&st, libc::S_IFCHR) && st.st_rdev == 0 {
                // A whiteout: the target was deleted in that layer.
                return Err(missing());
            }
            if !is_type(&st, libc::S_IFREG) {
                return Err(invalid(describe_type(&st)));
            }
            // Only open after checking the type: opening a device node can have side effects.
            let src = openat(
                Some(tpfd.as_raw_fd()),
                tname,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(raw, "cannot open hardlink target in a parent layer", e))?;
            // SAFETY: `openat` just returned this descriptor and nothing else owns it.
            let mut src = unsafe { File::from_raw_fd(src) };
            let st = fstat(src.as_raw_fd())
                .map_err(|e| io_err(raw, "cannot inspect hardlink target in a parent layer", e))?;
            if !is_type(&st, libc::S_IFREG) {
                return Err(invalid(describe_type(&st)));
            }
            return self.copy_up(raw, parent, name, &mut src, &st);
        }
        Err(missing())
    }

    /// Writes a copy of the lower-layer file `src` (content, owner, mode, xattrs, mtime) at
    /// `parent/name` in this layer.
    fn copy_up(
        &mut self,
        raw: &[u8],
        parent: &[u8],
        name: &[u8],
        src: &mut File,
        st: &FileStat,
    ) -> Result<(), ApplyError> {
        let pfd = self.parent_or_err(raw, parent)?;
        let mut dst = self
            .create_file(pfd, name)
            .map_err(|e| io_err(raw, "cannot create file", e))?;
        let copied = io::copy(src, &mut dst).map_err(|err| ApplyError::Io {
            path: show(raw),
            op: "copying hardlink target from a parent layer",
            err,
        })?;
        self.stats.bytes += copied;
        let fd = dst.as_raw_fd();
        fchown(
            fd,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        )
        .map_err(|e| io_err(raw, "cannot set owner", e))?;
        fchmod(fd, Mode::from_bits_retain(st.st_mode & 0o7777))
            .map_err(|e| io_err(raw, "cannot set mode", e))?;
        let xattrs = read_xattrs(src.as_raw_fd())
            .map_err(|e| io_err(raw, "cannot read xattrs of hardlink target", e))?;
        set_xattrs(raw, XattrTarget::Fd(fd), NodeKind::File, &xattrs)?;
        let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
        futimens(fd, &mtime, &mtime).map_err(|e| io_err(raw, "cannot set mtime", e))?;
        Ok(())
    }

    fn lower_fd(&mut self, i: usize) -> Result<RawFd, ApplyError> {
        if self.lower_fds.len() < self.lowers.len() {
            self.lower_fds.resize_with(self.lowers.len(), || None);
        }
        if let Some(fd) = &self.lower_fds[i] {
            return Ok(fd.as_raw_fd());
        }
        let lower = &self.lowers[i];
        let fd = nix::fcntl::open(
            lower.as_path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ApplyError::Lower {
            lower: lower.clone(),
            err: e.into(),
        })?;
        // SAFETY: `open` just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        self.lower_fds[i] = Some(fd);
        Ok(raw)
    }

    /// Sets the deferred directory mtimes.
    fn finish(&mut self) -> Result<(), ApplyError> {
        let dir_times = std::mem::take(&mut self.dir_times);
        for (path, mtime) in &dir_times {
            let (parent, name) = split_parent(path);
            let pfd = match self.parent_fd(parent, false) {
                Ok(fd) => fd,
                // Removed or replaced by a later entry.
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(e) => return Err(io_err(path, "cannot resolve directory to set its mtime", e)),
            };
            if self.removed_any {
                match fstatat(Some(pfd), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) if is_type(&st, libc::S_IFDIR) => {}
                    Ok(_) | Err(Errno::ENOENT) => continue,
                    Err(e) => return Err(io_err(path, "cannot inspect directory", e)),
                }
            }
            utimensat(
                Some(pfd),
                name,
                mtime,
                mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| io_err(path, "cannot set directory mtime", e))?;
        }
        Ok(())
    }
}

/// Reads owner, mode, mtime and xattrs of an entry from its header and PAX records.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<Meta, ApplyError> {
    let header = entry.header();
    let old = header.as_old();
    let field = |parsed: io::Result<u64>, raw_field: &[u8]| {
        numeric(parsed, raw_field).map_err(|e| header_err(raw, e))
    };
    let uid = field(header.uid(), &old.uid)?;
    let gid = field(header.gid(), &old.gid)?;
    let mode = (field(header.mode().map(u64::from), &old.mode)? & 0o7777) as u32;
    let mtime = field(header.mtime(), &old.mtime)?;
    // u32::MAX means "leave unchanged" to chown; a layer has no business asking for it.
    let id = |v: u64| u32::try_from(v).ok().filter(|&v| v != u32::MAX);
    let (uid, gid) = match (id(uid), id(gid)) {
        (Some(u), Some(g)) => (u, g),
        _ => {
            return Err(header_err(
                raw,
                io::Error::new(io::ErrorKind::InvalidData, "uid or gid out of range"),
            ))
        }
    };
    let mut mtime = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    let mut xattrs = Vec::new();
    // (The tar crate already applies PAX uid/gid/size/path/linkpath.)
    if let Some(pax) = entry
        .pax_extensions()
        .map_err(|err| ApplyError::Stream { err })?
    {
        for ext in pax {
            let ext = ext.map_err(|e| header_err(raw, e))?;
            let key = ext.key_bytes();
            if let Some(xname) = key.strip_prefix(b"SCHILY.xattr.") {
                let xname = CString::new(xname)
                    .map_err(|_| invalid_name(raw, "xattr name contains a NUL byte"))?;
                xattrs.push((xname, ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                if let Some((sec, nsec)) = parse_pax_time(ext.value_bytes()) {
                    mtime = TimeSpec::new(sec, nsec);
                }
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        xattrs,
    })
}

/// A numeric header field; an all-blank field (NULs/spaces) reads as 0, as other tar readers
/// (GNU tar, Go's archive/tar) treat it.
fn numeric(parsed: io::Result<u64>, field: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if field.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        other => other,
    }
}

/// Device numbers of a char/block entry (blank fields read as 0; v7 headers have none).
fn device_numbers(header: &tar::Header) -> io::Result<(u64, u64)> {
    let fields = header
        .as_ustar()
        .map(|u| (&u.dev_major, &u.dev_minor))
        .or_else(|| header.as_gnu().map(|g| (&g.dev_major, &g.dev_minor)));
    let Some((major_field, minor_field)) = fields else {
        return Ok((0, 0));
    };
    let major = numeric(
        header.device_major().map(|v| v.map_or(0, u64::from)),
        major_field,
    )?;
    let minor = numeric(
        header.device_minor().map(|v| v.map_or(0, u64::from)),
        minor_field,
    )?;
    Ok((major, minor))
}

/// Parses a PAX time (`[-]SECONDS[.FRACTION]`) into seconds and nanoseconds.
fn parse_pax_time(v: &[u8]) -> Option<(i64, i64)> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: i64 = int.parse().ok()?;
    let mut nsec: i64 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    if neg {
        // -1.25 is 1.25 seconds before the epoch: (-2 s, 750000000 ns).
        if nsec == 0 {
            Some((-sec, 0))
        } else {
            Some((-sec - 1, 1_000_000_000 - nsec))
        }
    } else {
        Some((sec, nsec))
    }
}

/// Lexically normalizes a tar name to a relative path (components joined by `/`), clamping
/// `..` at the root; see the module docs. An empty result names the root itself.
fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.is_empty() {
        return Err("empty name");
    }
    if raw.contains(&0) {
        return Err("name contains a NUL byte");
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                // Drop the last component; at the root, `..` stays at the root.
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(comp);
            }
        }
    }
    Ok(out)
}

/// Splits a normalized path into its parent (possibly empty = root) and last component.
fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Opens the directory `path` (normalized, non-empty) resolved inside `root` as an O_PATH fd.
fn open_in_root(root: RawFd, path: &[u8]) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    for _ in 0..OPENAT2_RETRIES {
        match openat2(root, path, how) {
            Err(Errno::EAGAIN) => continue,
            // SAFETY: `openat2` just returned this descriptor and nothing else owns it.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

/// Resolves the directory `path` inside `root` (root itself when empty). With `create`,
/// missing components are made (0755, root-owned) one at a time, each relative to the
/// already-resolved fd of its parent.
fn resolve_dir(root: RawFd, path: &[u8], create: bool) -> Result<OwnedFd, Errno> {
    if path.is_empty() {
        // A fresh O_PATH descriptor of the root, so the caller owns what it gets.
        return open_in_root(root, b".");
    }
    match open_in_root(root, path) {
        Err(Errno::ENOENT) if create => {}
        other => return other,
    }
    // Find the deepest existing prefix (resolved inside root, symlinks included) ...
    let mut cur: Option<OwnedFd> = None;
    let mut start = 0;
    loop {
        let end = path[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(path.len(), |p| start + p);
        match open_in_root(root, &path[..end]) {
            Ok(fd) => cur = Some(fd),
            Err(Errno::ENOENT) => break,
            Err(e) => return Err(e),
        }
        if end == path.len() {
            // Appeared meanwhile; nothing left to create.
            return cur.ok_or(Errno::ENOENT);
        }
        start = end + 1;
    }
    // ... then create the rest below it.
    for comp in path[start..].split(|&b| b == b'/') {
        let dirfd = cur.as_ref().map_or(root, |fd| fd.as_raw_fd());
        match mkdirat(Some(dirfd), comp, Mode::from_bits_truncate(0o755)) {
            Ok(()) => {}
            // Exists but did not resolve: a dangling symlink (or a loop). Not a directory.
            Err(Errno::EEXIST) => return Err(Errno::ENOTDIR),
            Err(e) => return Err(e),
        }
        // Undo umask and setgid inheritance: missing parents are 0755 root:root.
        fchownat(
            Some(dirfd),
            comp,
            Some(Uid::from_raw(0)),
            Some(Gid::from_raw(0)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        fchmodat(
            Some(dirfd),
            comp,
            Mode::from_bits_truncate(0o755),
            FchmodatFlags::FollowSymlink,
        )?;
        let fd = openat(
            Some(dirfd),
            comp,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        cur = Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    cur.ok_or(Errno::ENOENT)
}

/// Opens the directory `pfd/name` for reading (not following a symlink), e.g. for fsetxattr.
fn open_dir_fd(pfd: RawFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    let fd = openat(
        Some(pfd),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes the directory `pfd/name` and everything below it, never following symlinks.
fn remove_tree(pfd: RawFd, name: &[u8]) -> Result<(), Errno> {
    let fd = open_dir_fd(pfd, name)?;
    let mut dir = nix::dir::Dir::from(fd)?;
    let mut children: Vec<(CString, bool)> = Vec::new();
    for ent in dir.iter() {
        let ent = ent?;
        let n = ent.file_name();
        if n == c"." || n == c".." {
            continue;
        }
        let is_dir = ent.file_type() == Some(nix::dir::Type::Directory);
        children.push((n.to_owned(), is_dir));
    }
    let dfd = dir.as_raw_fd();
    for (child, is_dir) in &children {
        let child = child.to_bytes();
        if *is_dir {
            remove_tree(dfd, child)?;
            continue;
        }
        match unlinkat(Some(dfd), child, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            // d_type was unknown and it is a directory.
            Err(Errno::EISDIR) => remove_tree(dfd, child)?,
            Err(e) => return Err(e),
        }
    }
    drop(dir);
    unlinkat(Some(pfd), name, UnlinkatFlags::RemoveDir)
}

/// `/proc/self/fd/<fd>/<name>`: a path to `name` inside the directory `fd` (an O_PATH fd
/// resolved inside the root) for the path-only xattr calls. The magic link only ever leads to
/// that directory, and `lsetxattr` does not follow `name` itself.
fn proc_path(fd: RawFd, name: &[u8]) -> Result<CString, Errno> {
    let mut p = format!("/proc/self/fd/{fd}/").into_bytes();
    p.extend_from_slice(name);
    CString::new(p).map_err(|_| Errno::EINVAL)
}

fn set_xattrs(
    raw: &[u8],
    target: XattrTarget<'_>,
    kind: NodeKind,
    xattrs: &[(CString, Vec<u8>)],
) -> Result<(), ApplyError> {
    for (name, value) in xattrs {
        let n = name.to_bytes();
        if n.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let user = n.starts_with(b"user.");
        if user && kind == NodeKind::Symlink {
            // The kernel only allows user.* on regular files and directories.
            continue;
        }
        let res = match target {
            XattrTarget::Fd(fd) => fsetxattr(fd, name, value),
            XattrTarget::Path(p) => lsetxattr(p, name, value),
        };
        match res {
            Ok(()) => {}
            // The filesystem does not store this namespace: nothing to preserve it in.
            Err(Errno::EOPNOTSUPP) => {}
            Err(Errno::EPERM) if user && kind == NodeKind::Special => {}
            Err(e) => {
                return Err(ApplyError::Io {
                    path: show(raw),
                    op: "cannot set xattr",
                    err: io::Error::new(
                        io::Error::from(e).kind(),
                        format!("{}: {e}", String::from_utf8_lossy(n)),
                    ),
                })
            }
        }
    }
    Ok(())
}

fn fsetxattr(fd: RawFd, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated and `value` is a valid buffer of the given length; the
    // kernel only reads them.
    let r = unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    Errno::result(r).map(drop)
}

fn lsetxattr(path: &CStr, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: `path` and `name` are NUL-terminated and `value` is a valid buffer of the given
    // length; the kernel only reads them.
    let r = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// All xattrs of an open file (names and values).
fn read_xattrs(fd: RawFd) -> Result<Vec<(CString, Vec<u8>)>, Errno> {
    let mut names: Vec<u8> = vec![0; 1024];
    loop {
        // SAFETY: the buffer is valid for writes of `names.len()` bytes.
        let r = unsafe { libc::flistxattr(fd, names.as_mut_ptr().cast(), names.len()) };
        match Errno::result(r) {
            Ok(n) => {
                names.truncate(n as usize);
                break;
            }
            Err(Errno::ERANGE) => names.resize(names.len() * 4, 0),
            Err(Errno::EOPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
        let mut value: Vec<u8> = vec![0; 256];
        loop {
            // SAFETY: `name` is NUL-terminated; the buffer is valid for `value.len()` bytes.
            let r = unsafe {
                libc::fgetxattr(fd, name.as_ptr(), value.as_mut_ptr().cast(), value.len())
            };
            match Errno::result(r) {
                Ok(n) => {
                    value.truncate(n as usize);
                    break;
                }
                Err(Errno::ERANGE) => value.resize(value.len() * 4, 0),
                Err(e) => return Err(e),
            }
        }
        out.push((name, value));
    }
    Ok(out)
}

fn is_type(st: &FileStat, fmt: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == fmt
}

fn describe_type(st: &FileStat) -> &'static str {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFIFO => "a fifo",
        libc::S_IFSOCK => "a socket",
        _ => "not a regular file",
    }
}

/// An entry name for messages.
fn show(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn io_err(raw: &[u8], op: &'static str, e: Errno) -> ApplyError {
    ApplyError::Io {
        path: show(raw),
        op,
        err: e.into(),
    }
}

fn header_err(raw: &[u8], err: io::Error) -> ApplyError {
    ApplyError::Header {
        path: show(raw),
        err,
    }
}

fn invalid_name(raw: &[u8], reason: &'static str) -> ApplyError {
    ApplyError::InvalidName {
        path: show(raw),
        reason,
    }
}

#[cfg(test)]
mod tests {
    //! These tests run as root: they create device nodes, chown, and set trusted.* xattrs.
    //! Each works in its own temp dir holding `root/` (the layer) and a sibling `outside/`
    //! with a sentinel file, which hostile cases check is left exactly as it was.

    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tar::{Builder, Header};

    const MTIME: u64 = 1_500_000_000;
    const SENTINEL: &[u8] = b"sentinel content\n";

    // ---------- temp dirs and the outside sentinel ----------

    /// Everything observable about a tree: type, mode, owner, size, mtime, links, xattrs and
    /// content (or symlink target), keyed by relative path ("" is the tree's root).
    type Snapshot = BTreeMap<PathBuf, String>;

    struct TestDir {
        base: PathBuf,
        root: PathBuf,
        outside: PathBuf,
        sentinel: PathBuf,
        before: Snapshot,
    }

    impl TestDir {
        fn new(tag: &str) -> TestDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let base = std::env::temp_dir().join(format!(
                "berth-apply-{}-{}-{tag}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&base);
            // root/ sits three levels below base/, so a `../../..` that escaped would land in
            // base/ (next to outside/), never elsewhere on the host.
            let root = base.join("d1/d2/root");
            let outside = base.join("outside");
            fs::create_dir_all(&root).unwrap();
            fs::create_dir_all(outside.join("subdir")).unwrap();
            let sentinel = outside.join("sentinel");
            fs::write(&sentinel, SENTINEL).unwrap();
            set_times(&sentinel, 1_000_000_000);
            set_times(&outside.join("subdir"), 1_000_000_100);
            set_times(&outside, 1_000_000_200);
            let before = snapshot(&outside);
            TestDir {
                base,
                root,
                outside,
                sentinel,
                before,
            }
        }

        fn apply(&self, tar: &[u8]) -> Result<ApplyStats, ApplyError> {
            apply_layer(tar, &self.root, &[])
        }

        /// The sibling `outside/` (and the sentinel in it) is exactly as it was, and nothing
        /// new appeared next to `root/`.
        fn assert_outside_unchanged(&self) {
            assert_eq!(
                snapshot(&self.outside),
                self.before,
                "outside/ was modified"
            );
            assert_eq!(fs::read(&self.sentinel).unwrap(), SENTINEL);
            let names = |dir: &Path| {
                let mut names: Vec<_> = fs::read_dir(dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                names.sort();
                names
            };
            assert_eq!(
                names(&self.base),
                ["d1", "outside"],
                "something escaped root/"
            );
            assert_eq!(
                names(&self.base.join("d1")),
                ["d2"],
                "something escaped root/"
            );
        }

        /// A directory next to root/ (for parent layers).
        fn sibling(&self, name: &str) -> PathBuf {
            self.root.with_file_name(name)
        }

        fn p(&self, rel: &str) -> PathBuf {
            self.root.join(rel)
        }

        /// `outside/` as an absolute path without the leading slash (how a hostile absolute
        /// name lands inside root).
        fn outside_rel(&self) -> String {
            self.outside
                .to_str()
                .unwrap()
                .trim_start_matches('/')
                .to_string()
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.base);
        }
    }

    fn set_times(path: &Path, sec: i64) {
        let t = TimeSpec::new(sec, 0);
        utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
    }

    fn snapshot(dir: &Path) -> Snapshot {
        let mut out = BTreeMap::new();
        walk(dir, Path::new(""), &mut out);
        out
    }

    fn walk(base: &Path, rel: &Path, out: &mut Snapshot) {
        let path = base.join(rel);
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let body = if ft.is_symlink() {
            format!("-> {:?}", fs::read_link(&path).unwrap())
        } else if ft.is_file() {
            format!("{:?}", fs::read(&path).unwrap())
        } else {
            String::new()
        };
        out.insert(
            rel.to_path_buf(),
            format!(
                "mode={:o} uid={} gid={} size={} mtime={}.{} nlink={} ino={} xattrs={:?} {body}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.size(),
                md.mtime(),
                md.mtime_nsec(),
                md.nlink(),
                md.ino(),
                xattrs_of(&path),
            ),
        );
        if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                walk(base, &rel.join(n), out);
            }
        }
    }

    fn cpath(path: &Path) -> CString {
        CString::new(path.as_os_str().as_bytes()).unwrap()
    }

    fn xattrs_of(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let p = cpath(path);
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: valid NUL-terminated path and a buffer of the given size.
        let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert!(
            n >= 0,
            "llistxattr {path:?}: {}",
            io::Error::last_os_error()
        );
        buf.truncate(n as usize);
        let mut out = BTreeMap::new();
        for name in buf.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8(name.to_vec()).unwrap();
            out.insert(name.clone(), getxattr(path, &name).unwrap());
        }
        out
    }

    fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let p = cpath(path);
        let n = CString::new(name).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: valid NUL-terminated strings and a buffer of the given size.
        let r =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            return None;
        }
        buf.truncate(r as usize);
        Some(buf)
    }

    fn lmeta(path: &Path) -> fs::Metadata {
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
    }

    // ---------- building layer tars ----------

    #[derive(Clone)]
    struct Spec {
        kind: EntryType,
        name: Vec<u8>,
        link: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        data: Vec<u8>,
        dev: Option<(u32, u32)>,
        pax: Vec<(String, Vec<u8>)>,
    }

    impl Spec {
        fn new(kind: EntryType, name: impl AsRef<[u8]>) -> Spec {
            let mode = match kind {
                EntryType::Directory => 0o755,
                EntryType::Symlink => 0o777,
                _ => 0o644,
            };
            Spec {
                kind,
                name: name.as_ref().to_vec(),
                link: Vec::new(),
                mode,
                uid: 0,
                gid: 0,
                mtime: MTIME,
                data: Vec::new(),
                dev: None,
                pax: Vec::new(),
            }
        }
        fn mode(mut self, mode: u32) -> Spec {
            self.mode = mode;
            self
        }
        fn owner(mut self, uid: u64, gid: u64) -> Spec {
            self.uid = uid;
            self.gid = gid;
            self
        }
        fn mtime(mut self, mtime: u64) -> Spec {
            self.mtime = mtime;
            self
        }
        fn data(mut self, data: impl AsRef<[u8]>) -> Spec {
            self.data = data.as_ref().to_vec();
            self
        }
        fn link(mut self, link: impl AsRef<[u8]>) -> Spec {
            self.link = link.as_ref().to_vec();
            self
        }
        fn dev(mut self, major: u32, minor: u32) -> Spec {
            self.dev = Some((major, minor));
            self
        }
        fn pax(mut self, key: &str, value: impl AsRef<[u8]>) -> Spec {
            self.pax.push((key.to_string(), value.as_ref().to_vec()));
            self
        }
    }

    fn file(name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Spec {
        Spec::new(EntryType::Regular, name).data(data)
    }
    fn dir(name: impl AsRef<[u8]>) -> Spec {
        Spec::new(EntryType::Directory, name)
    }
    fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Spec {
        Spec::new(EntryType::Symlink, name).link(target)
    }
    fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Spec {
        Spec::new(EntryType::Link, name).link(target)
    }

    /// Writes entries with raw header bytes, so hostile names the tar Builder refuses (`..`,
    /// absolute) go through unchanged; names and link targets over 100 bytes use GNU
    /// longname/longlink records.
    fn layer(specs: &[Spec]) -> Vec<u8> {
        let mut b = Builder::new(Vec::new());
        for s in specs {
            if !s.pax.is_empty() {
                b.append_pax_extensions(s.pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                    .unwrap();
            }
            if s.name.len() > 100 {
                gnu_long(&mut b, EntryType::GNULongName, &s.name);
            }
            if s.link.len() > 100 {
                gnu_long(&mut b, EntryType::GNULongLink, &s.link);
            }
            let mut h = Header::new_gnu();
            {
                let old = h.as_old_mut();
                let n = s.name.len().min(100);
                old.name[..n].copy_from_slice(&s.name[..n]);
                let l = s.link.len().min(100);
                old.linkname[..l].copy_from_slice(&s.link[..l]);
            }
            h.set_entry_type(s.kind);
            h.set_mode(s.mode);
            h.set_uid(s.uid);
            h.set_gid(s.gid);
            h.set_mtime(s.mtime);
            h.set_size(s.data.len() as u64);
            if let Some((major, minor)) = s.dev {
                h.set_device_major(major).unwrap();
                h.set_device_minor(minor).unwrap();
            }
            h.set_cksum();
            b.append(&h, s.data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gnu_long(b: &mut Builder<Vec<u8>>, kind: EntryType, value: &[u8]) {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(value.len() as u64 + 1);
        h.set_cksum();
        let mut data = value.to_vec();
        data.push(0);
        b.append(&h, data.as_slice()).unwrap();
    }

    /// A valid VFS_CAP_REVISION_2 security.capability value: effective, CAP_NET_BIND_SERVICE.
    fn cap_net_bind_service() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes());
        v.extend_from_slice(&(1u32 << 10).to_le_bytes()); // permitted (low)
        v.extend_from_slice(&0u32.to_le_bytes()); // inheritable (low)
        v.extend_from_slice(&0u32.to_le_bytes()); // permitted (high)
        v.extend_from_slice(&0u32.to_le_bytes()); // inheritable (high)
        v
    }

    // ---------- normal layers ----------

    #[test]
    fn regular_files_keep_content_mode_owner_mtime() {
        let t = TestDir::new("regular");
        let big: Vec<u8> = (0..COPY_BUF_SIZE * 2 + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        let stats = t
            .apply(&layer(&[
                dir("etc"),
                file("etc/hosts", b"127.0.0.1 localhost\n")
                    .mode(0o640)
                    .owner(1000, 2000)
                    .mtime(1_234_567_890),
                file("big.bin", &big).mode(0o600),
                file("empty", b"").mode(0o444),
            ]))
            .unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                entries: 4,
                bytes: 20 + big.len() as u64
            }
        );
        let md = lmeta(&t.p("etc/hosts"));
        assert!(md.file_type().is_file());
        assert_eq!(md.mode() & 0o7777, 0o640);
        assert_eq!((md.uid(), md.gid()), (1000, 2000));
        assert_eq!((md.mtime(), md.atime()), (1_234_567_890, 1_234_567_890));
        assert_eq!(
            fs::read(t.p("etc/hosts")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        assert_eq!(fs::read(t.p("big.bin")).unwrap(), big);
        assert_eq!(lmeta(&t.p("empty")).mode() & 0o7777, 0o444);
        assert_eq!(lmeta(&t.p("empty")).len(), 0);
        t.assert_outside_unchanged();
    }

    #[test]
    fn setuid_setgid_sticky_survive_chown() {
        let t = TestDir::new("setuid");
        t.apply(&layer(&[
            file("usr/bin/su", b"#!x").mode(0o4755).owner(0, 0),
            file("usr/bin/passwd", b"#!x").mode(0o6755).owner(1000, 42),
            file("usr/bin/wall", b"#!x").mode(0o2755).owner(3, 5),
            dir("tmp").mode(0o1777),
            dir("srv/shared").mode(0o2775).owner(7, 8),
        ]))
        .unwrap();
        assert_eq!(lmeta(&t.p("usr/bin/su")).mode() & 0o7777, 0o4755);
        let pw = lmeta(&t.p("usr/bin/passwd"));
        assert_eq!((pw.mode() & 0o7777, pw.uid(), pw.gid()), (0o6755, 1000, 42));
        assert_eq!(lmeta(&t.p("usr/bin/wall")).mode() & 0o7777, 0o2755);
        assert_eq!(lmeta(&t.p("tmp")).mode() & 0o7777, 0o1777);
        let sh = lmeta(&t.p("srv/shared"));
        assert_eq!((sh.mode() & 0o7777, sh.uid(), sh.gid()), (0o2775, 7, 8));
    }

    #[test]
    fn nested_directories_keep_their_mtimes() {
        let t = TestDir::new("dirmtime");
        t.apply(&layer(&[
            dir("a").mtime(1_100_000_000).mode(0o750).owner(5, 6),
            dir("a/b").mtime(1_200_000_000),
            file("a/b/f", b"x").mtime(1_300_000_000),
            dir("a/b/c").mtime(1_250_000_000),
            file("a/b/c/g", b"y"),
            file("a/z", b"z"),
            // PAX mtime with a fraction wins over the header's.
            dir("p").pax("mtime", "1400000000.123456789"),
            file("p/q", b"q").pax("mtime", "1400000001.5"),
        ]))
        .unwrap();
        let a = lmeta(&t.p("a"));
        assert_eq!(
            (a.mtime(), a.mode() & 0o7777, a.uid(), a.gid()),
            (1_100_000_000, 0o750, 5, 6)
        );
        assert_eq!(lmeta(&t.p("a/b")).mtime(), 1_200_000_000);
        assert_eq!(lmeta(&t.p("a/b/c")).mtime(), 1_250_000_000);
        assert_eq!(lmeta(&t.p("a/b/f")).mtime(), 1_300_000_000);
        let p = lmeta(&t.p("p"));
        assert_eq!((p.mtime(), p.mtime_nsec()), (1_400_000_000, 123_456_789));
        let q = lmeta(&t.p("p/q"));
        assert_eq!((q.mtime(), q.mtime_nsec()), (1_400_000_001, 500_000_000));
    }

    #[test]
    fn symlinks_keep_target_owner_and_mtime() {
        let t = TestDir::new("symlink");
        t.apply(&layer(&[
            dir("bin"),
            symlink("bin/sh", "dash").owner(11, 12).mtime(1_111_111_111),
            symlink("lib64", "/usr/lib64"),
            symlink("dangling", "../../nowhere"),
        ]))
        .unwrap();
        let md = lmeta(&t.p("bin/sh"));
        assert!(md.file_type().is_symlink());
        assert_eq!(fs::read_link(t.p("bin/sh")).unwrap(), Path::new("dash"));
        assert_eq!(
            (md.uid(), md.gid(), md.mtime(), md.atime()),
            (11, 12, 1_111_111_111, 1_111_111_111)
        );
        assert_eq!(
            fs::read_link(t.p("lib64")).unwrap(),
            Path::new("/usr/lib64")
        );
        assert_eq!(
            fs::read_link(t.p("dangling")).unwrap(),
            Path::new("../../nowhere")
        );
        t.assert_outside_unchanged();
    }

    #[test]
    fn hardlink_in_same_layer_shares_the_inode() {
        let t = TestDir::new("hardlink");
        t.apply(&layer(&[
            file("usr/bin/perl5.36", b"perl").mode(0o755),
            hardlink("usr/bin/perl", "usr/bin/perl5.36"),
            hardlink("./usr/bin/perl-again", "/usr/bin/perl5.36"),
            symlink("usr/bin/link-to-symlink-target", "perl"),
            hardlink(
                "usr/bin/hardlinked-symlink",
                "usr/bin/link-to-symlink-target",
            ),
            // A link to itself and a repeated link are harmless.
            hardlink("usr/bin/perl", "usr/bin/perl"),
            hardlink("usr/bin/perl", "usr/bin/perl5.36"),
        ]))
        .unwrap();
        let a = lmeta(&t.p("usr/bin/perl5.36"));
        let b = lmeta(&t.p("usr/bin/perl"));
        let c = lmeta(&t.p("usr/bin/perl-again"));
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.ino(), c.ino());
        assert_eq!(a.nlink(), 3);
        // A hardlink to a symlink links the symlink itself.
        let s = lmeta(&t.p("usr/bin/hardlinked-symlink"));
        assert!(s.file_type().is_symlink());
        assert_eq!(s.ino(), lmeta(&t.p("usr/bin/link-to-symlink-target")).ino());
    }

    #[test]
    fn hardlink_to_lower_layer_copies_the_file() {
        let t = TestDir::new("lowerlink");
        let lower1 = t.sibling("lower1"); // topmost parent
        let lower2 = t.sibling("lower2");
        fs::create_dir(&lower1).unwrap();
        fs::create_dir(&lower2).unwrap();
        let lower2_tar = layer(&[
            file("usr/bin/tool", b"lower2 tool")
                .mode(0o4750)
                .owner(100, 200)
                .mtime(1_000_000_001)
                .pax("SCHILY.xattr.user.note", "from lower2")
                .pax("SCHILY.xattr.security.capability", cap_net_bind_service()),
            file("only/in/lower2", b"deep"),
        ]);
        apply_layer(lower2_tar.as_slice(), &lower2, &[]).unwrap();
        let lower1_tar = layer(&[file("usr/bin/tool", b"lower1 tool wins")
            .mode(0o711)
            .owner(1, 2)
            .mtime(1_000_000_002)
            .pax("SCHILY.xattr.user.note", "from lower1")]);
        apply_layer(lower1_tar.as_slice(), &lower1, &[]).unwrap();

        let lowers = vec![lower1.clone(), lower2.clone()];
        let stats = apply_layer(
            layer(&[
                hardlink("usr/bin/tool-link", "usr/bin/tool"),
                hardlink("copy", "/only/in/lower2"),
            ])
            .as_slice(),
            &t.root,
            &lowers,
        )
        .unwrap();
        assert_eq!(stats.bytes, b"lower1 tool wins".len() as u64 + 4);
        let md = lmeta(&t.p("usr/bin/tool-link"));
        assert_eq!(
            fs::read(t.p("usr/bin/tool-link")).unwrap(),
            b"lower1 tool wins"
        );
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
            (0o711, 1, 2, 1_000_000_002)
        );
        assert_eq!(
            getxattr(&t.p("usr/bin/tool-link"), "user.note").unwrap(),
            b"from lower1"
        );
        assert_ne!(md.ino(), lmeta(&lower1.join("usr/bin/tool")).ino());
        assert_eq!(lmeta(&lower1.join("usr/bin/tool")).nlink(), 1);
        assert_eq!(fs::read(t.p("copy")).unwrap(), b"deep");

        // Copied from lower2 with setuid mode, owner, xattrs (capability kept after chown).
        let t2 = TestDir::new("lowerlink2");
        apply_layer(
            layer(&[hardlink("x", "usr/bin/tool")]).as_slice(),
            &t2.root,
            std::slice::from_ref(&lower2),
        )
        .unwrap();
        let md = lmeta(&t2.p("x"));
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
            (0o4750, 100, 200, 1_000_000_001)
        );
        assert_eq!(
            getxattr(&t2.p("x"), "security.capability").unwrap(),
            cap_net_bind_service()
        );
        assert_eq!(getxattr(&t2.p("x"), "user.note").unwrap(), b"from lower2");
    }

    #[test]
    fn hardlink_to_non_regular_lower_file_is_rejected() {
        let t = TestDir::new("lowerlinkbad");
        let lower = t.sibling("lower");
        fs::create_dir(&lower).unwrap();
        apply_layer(
            layer(&[
                Spec::new(EntryType::Fifo, "fifo"),
                symlink("sym", "fifo"),
                dir("d"),
                file("gone", b"x"),
            ])
            .as_slice(),
            &lower,
            &[],
        )
        .unwrap();
        let upper = t.sibling("upper");
        fs::create_dir(&upper).unwrap();
        apply_layer(layer(&[file(".wh.gone", b"")]).as_slice(), &upper, &[]).unwrap();
        let lowers = [upper.clone(), lower.clone()];
        for target in ["fifo", "sym", "d"] {
            let err = apply_layer(layer(&[hardlink("l", target)]).as_slice(), &t.root, &lowers)
                .unwrap_err();
            assert!(
                matches!(err, ApplyError::LinkTargetInvalid { .. }),
                "{target}: {err}"
            );
        }
        // Whited out in a higher parent layer: gone, even though a lower one still has it.
        let err =
            apply_layer(layer(&[hardlink("l", "gone")]).as_slice(), &t.root, &lowers).unwrap_err();
        assert!(matches!(err, ApplyError::LinkTargetMissing { .. }), "{err}");
        assert!(fs::symlink_metadata(t.p("l")).is_err());
    }

    #[test]
    fn fifos_and_device_nodes() {
        let t = TestDir::new("devices");
        t.apply(&layer(&[
            dir("dev"),
            Spec::new(EntryType::Char, "dev/null")
                .dev(1, 3)
                .mode(0o666)
                .mtime(1_222_222_222),
            Spec::new(EntryType::Block, "dev/loop7")
                .dev(7, 7)
                .mode(0o660)
                .owner(0, 6),
            Spec::new(EntryType::Fifo, "run/initctl")
                .mode(0o600)
                .owner(4, 4),
        ]))
        .unwrap();
        let null = lmeta(&t.p("dev/null"));
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
        assert_eq!((null.mode() & 0o7777, null.mtime()), (0o666, 1_222_222_222));
        let lp = lmeta(&t.p("dev/loop7"));
        assert!(lp.file_type().is_block_device());
        assert_eq!(
            (lp.rdev(), lp.mode() & 0o7777, lp.gid()),
            (makedev(7, 7), 0o660, 6)
        );
        let fifo = lmeta(&t.p("run/initctl"));
        assert!(fifo.file_type().is_fifo());
        assert_eq!((fifo.mode() & 0o7777, fifo.uid()), (0o600, 4));
    }

    #[test]
    fn xattrs_are_applied_after_chown() {
        let t = TestDir::new("xattrs");
        t.apply(&layer(&[
            file("bin/ping", b"ping")
                .mode(0o755)
                .owner(1000, 1000)
                .pax("SCHILY.xattr.security.capability", cap_net_bind_service())
                .pax("SCHILY.xattr.user.mime_type", "application/x-executable")
                .pax("SCHILY.xattr.trusted.berth", [0u8, 1, 2, 255]),
            dir("d")
                .owner(3, 3)
                .pax("SCHILY.xattr.user.dir", "yes")
                .pax("SCHILY.xattr.trusted.dir", "t"),
            // overlayfs-private xattrs are never taken from a layer.
            dir("o")
                .pax("SCHILY.xattr.trusted.overlay.redirect", "/etc")
                .pax("SCHILY.xattr.trusted.overlay.opaque", "y"),
            // user.* cannot live on a symlink: skipped; trusted.* can.
            symlink("s", "bin/ping")
                .pax("SCHILY.xattr.user.x", "1")
                .pax("SCHILY.xattr.trusted.sym", "2"),
            Spec::new(EntryType::Fifo, "f").pax("SCHILY.xattr.trusted.fifo", "3"),
        ]))
        .unwrap();
        let ping = t.p("bin/ping");
        assert_eq!(
            getxattr(&ping, "security.capability").unwrap(),
            cap_net_bind_service()
        );
        assert_eq!(
            getxattr(&ping, "user.mime_type").unwrap(),
            b"application/x-executable"
        );
        assert_eq!(getxattr(&ping, "trusted.berth").unwrap(), [0u8, 1, 2, 255]);
        assert_eq!(lmeta(&ping).uid(), 1000);
        assert_eq!(getxattr(&t.p("d"), "user.dir").unwrap(), b"yes");
        assert_eq!(getxattr(&t.p("d"), "trusted.dir").unwrap(), b"t");
        assert!(xattrs_of(&t.p("o"))
            .keys()
            .all(|k| !k.starts_with("trusted.overlay.")));
        assert_eq!(getxattr(&t.p("s"), "trusted.sym").unwrap(), b"2");
        assert!(getxattr(&t.p("s"), "user.x").is_none());
        assert_eq!(getxattr(&t.p("f"), "trusted.fifo").unwrap(), b"3");
    }

    #[test]
    fn long_names_and_link_targets() {
        let t = TestDir::new("longnames");
        let seg = "d".repeat(60);
        let p150 = format!("{seg}/{seg}/file-with-a-long-name-over-100-bytes");
        assert!(p150.len() > 100);
        let long_dir = format!(
            "{}/{}/{}",
            "a".repeat(120),
            "b".repeat(120),
            "c".repeat(120)
        );
        let p400 = format!("{long_dir}/{}", "f".repeat(200));
        assert!(p400.len() > 255);
        let pax_path = format!("{long_dir}/pax-{}", "p".repeat(150));
        let target = format!("../{}/{}", "t".repeat(80), "u".repeat(80));
        t.apply(&layer(&[
            file(&p150, b"150"),
            file(&p400, b"400"),
            // PAX path overrides the (truncated) name in the header.
            file("short-placeholder", b"pax").pax("path", &pax_path),
            symlink("long-symlink", &target),
            hardlink("long-hardlink", &p400),
            hardlink("pax-hardlink", "placeholder").pax("linkpath", &pax_path),
        ]))
        .unwrap();
        assert_eq!(fs::read(t.p(&p150)).unwrap(), b"150");
        assert_eq!(fs::read(t.p(&p400)).unwrap(), b"400");
        assert_eq!(fs::read(t.p(&pax_path)).unwrap(), b"pax");
        assert!(fs::symlink_metadata(t.p("short-placeholder")).is_err());
        assert_eq!(
            fs::read_link(t.p("long-symlink")).unwrap(),
            Path::new(&target)
        );
        assert_eq!(lmeta(&t.p("long-hardlink")).ino(), lmeta(&t.p(&p400)).ino());
        assert_eq!(
            lmeta(&t.p("pax-hardlink")).ino(),
            lmeta(&t.p(&pax_path)).ino()
        );
    }

    #[test]
    fn plain_extraction_keeps_whiteout_names_as_files() {
        let t = TestDir::new("plain");
        fs::write(t.p("keep"), b"still here").unwrap();
        let tar = layer(&[file(".wh.keep", b"data"), file("d/.wh..wh..opq", b"x")]);
        extract_plain(tar.as_slice(), &t.root).unwrap();
        assert_eq!(fs::read(t.p(".wh.keep")).unwrap(), b"data");
        assert_eq!(fs::read(t.p("keep")).unwrap(), b"still here", "nothing was whited out");
        assert_eq!(fs::read(t.p("d/.wh..wh..opq")).unwrap(), b"x");
    }

    #[test]
    fn whiteouts_become_0_0_char_devices() {
        let t = TestDir::new("whiteout");
        t.apply(&layer(&[
            dir("etc"),
            file("etc/.wh.passwd", b""),
            // Replaces what this layer itself put there, recursively for a directory.
            file("etc/shadow", b"secret"),
            file("etc/.wh.shadow", b""),
            dir("var/cache"),
            file("var/cache/x/y/z", b"deep"),
            symlink("var/cache/x/l", t.outside.to_str().unwrap()),
            file("var/.wh.cache", b""),
            // Whiteout in a directory the layer does not list: the directory is created.
            file("opt/app/.wh.old", b""),
        ]))
        .unwrap();
        for p in ["etc/passwd", "etc/shadow", "var/cache", "opt/app/old"] {
            let md = lmeta(&t.p(p));
            assert!(md.file_type().is_char_device(), "{p}");
            assert_eq!(md.rdev(), 0, "{p}");
        }
        assert!(fs::symlink_metadata(t.p("etc/.wh.passwd")).is_err());
        assert_eq!(lmeta(&t.p("opt/app")).mode() & 0o7777, 0o755);
        t.assert_outside_unchanged();
    }

    #[test]
    fn opaque_marker_sets_overlay_xattr() {
        let t = TestDir::new("opaque");
        t.apply(&layer(&[
            dir("usr/share/doc").mtime(1_100_000_000),
            file("usr/share/doc/.wh..wh..opq", b""),
            file("missing/dir/.wh..wh..opq", b""),
            file("usr/.wh..wh.plnk", b""),
            file(".wh..wh.aufs", b""),
        ]))
        .unwrap();
        assert_eq!(
            getxattr(&t.p("usr/share/doc"), "trusted.overlay.opaque").unwrap(),
            b"y"
        );
        assert_eq!(
            getxattr(&t.p("missing/dir"), "trusted.overlay.opaque").unwrap(),
            b"y"
        );
        assert!(getxattr(&t.p("usr"), "trusted.overlay.opaque").is_none());
        assert_eq!(fs::read_dir(t.p("usr/share/doc")).unwrap().count(), 0);
        assert!(fs::symlink_metadata(t.p("usr/.wh..wh.plnk")).is_err());
        assert!(fs::symlink_metadata(t.p(".wh..wh.aufs")).is_err());
        assert!(fs::symlink_metadata(t.p("plnk")).is_err());
        assert_eq!(lmeta(&t.p("usr/share/doc")).mtime(), 1_100_000_000);
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let t = TestDir::new("replace");
        t.apply(&layer(&[
            file("a", b"file a"),
            dir("a").mode(0o700), // file -> dir
            file("a/child", b"c"),
            dir("b").mtime(1_100_000_000),
            file("b/x/y", b"deep"),
            file("b", b"now a file"), // dir (with children) -> file
            file("c", b"c"),
            symlink("c", "a"), // file -> symlink
            symlink("d", "a"),
            dir("d"), // symlink -> dir (not followed into a/)
            dir("e").mode(0o755).owner(1, 1),
            file("e/keep", b"kept"),
            dir("e").mode(0o711).owner(2, 2).mtime(1_300_000_000), // dir -> dir: merged
            Spec::new(EntryType::Fifo, "f"),
            file("f", b"was a fifo"), // fifo -> file (no blocking open)
            file("g", b"one"),
            file("g", b"two"), // file -> file
        ]))
        .unwrap();
        let a = lmeta(&t.p("a"));
        assert!(a.is_dir());
        assert_eq!(a.mode() & 0o7777, 0o700);
        assert_eq!(fs::read(t.p("a/child")).unwrap(), b"c");
        assert_eq!(fs::read(t.p("b")).unwrap(), b"now a file");
        assert_eq!(fs::read_link(t.p("c")).unwrap(), Path::new("a"));
        assert!(lmeta(&t.p("d")).is_dir());
        assert_eq!(fs::read_dir(t.p("d")).unwrap().count(), 0);
        let e = lmeta(&t.p("e"));
        assert_eq!(
            (e.mode() & 0o7777, e.uid(), e.mtime()),
            (0o711, 2, 1_300_000_000)
        );
        assert_eq!(fs::read(t.p("e/keep")).unwrap(), b"kept");
        assert_eq!(fs::read(t.p("f")).unwrap(), b"was a fifo");
        assert_eq!(fs::read(t.p("g")).unwrap(), b"two");
    }

    #[test]
    fn replacing_a_directory_refreshes_cached_parent() {
        let t = TestDir::new("stalecache");
        t.apply(&layer(&[
            dir("e"),
            dir("d"),
            file("d/f", b"f"),
            // `d` (the cached parent of the previous entry) becomes a symlink to `e` ...
            symlink("d", "e"),
            // ... so this lands in e/, not in the deleted directory.
            file("d/g", b"g"),
        ]))
        .unwrap();
        assert_eq!(fs::read(t.p("e/g")).unwrap(), b"g");
        assert!(lmeta(&t.p("d")).file_type().is_symlink());
        // A directory replaced by a file cannot be a parent any more.
        let err = t
            .apply(&layer(&[
                dir("a"),
                file("a/x", b"x"),
                file("a", b"now a file"),
                file("a/y", b"y"),
            ]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::Io { .. }), "{err}");
        t.assert_outside_unchanged();
    }

    #[test]
    fn missing_parents_are_created_0755_root_owned() {
        let t = TestDir::new("parents");
        // SAFETY: umask only changes this process's file creation mask; restored below.
        let old = unsafe { libc::umask(0o077) };
        let res = t.apply(&layer(&[file("x/y/z/file", b"f").owner(9, 9)]));
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        res.unwrap();
        for p in ["x", "x/y", "x/y/z"] {
            let md = lmeta(&t.p(p));
            assert!(md.is_dir());
            assert_eq!(
                (md.mode() & 0o7777, md.uid(), md.gid()),
                (0o755, 0, 0),
                "{p}"
            );
        }
        assert_eq!(lmeta(&t.p("x/y/z/file")).uid(), 9);
    }

    #[test]
    fn root_entry_is_skipped_and_entries_counted() {
        let t = TestDir::new("rootentry");
        set_times(&t.root, 1_000_000_300);
        let before = lmeta(&t.root);
        let stats = t
            .apply(&layer(&[
                dir("./").mode(0o700).owner(5, 5),
                dir("/").mode(0o700),
                dir("."),
                file("./f", b"12345"),
                Spec::new(EntryType::new(b'g'), "global").data(b"10 a=bcdef\n"),
            ]))
            .unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                entries: 4,
                bytes: 5
            }
        );
        let after = lmeta(&t.root);
        assert_eq!((after.mode(), after.uid()), (before.mode(), before.uid()));
        assert_eq!(fs::read(t.p("f")).unwrap(), b"12345");
    }

    #[test]
    fn reads_only_the_archive_entries() {
        let t = TestDir::new("trailing");
        let mut data = layer(&[file("f", b"x")]);
        data.extend_from_slice(&[0u8; 1024]);
        data.extend_from_slice(b"trailing bytes the caller reads itself");
        let mut cursor = io::Cursor::new(data);
        apply_layer(&mut cursor, &t.root, &[]).unwrap();
        let mut rest = Vec::new();
        cursor.read_to_end(&mut rest).unwrap();
        assert!(rest.ends_with(b"trailing bytes the caller reads itself"));
    }

    // ---------- errors ----------

    #[test]
    fn hardlink_to_missing_target_is_an_error() {
        let t = TestDir::new("missing");
        let err = t
            .apply(&layer(&[file("a", b"a"), hardlink("b", "nope/nothing")]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::LinkTargetMissing { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("\"b\"") && msg.contains("nope/nothing"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        let err = t
            .apply(&layer(&[dir("d"), hardlink("l", "d")]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::LinkTargetInvalid { .. }), "{err}");
        let err = t.apply(&layer(&[hardlink("l", "/")])).unwrap_err();
        assert!(matches!(err, ApplyError::LinkTargetInvalid { .. }), "{err}");
        t.assert_outside_unchanged();
    }

    #[test]
    fn invalid_names_and_corrupt_streams_are_errors() {
        let t = TestDir::new("invalid");
        let err = t
            .apply(&layer(&[file("x", b"").pax("path", b"a\0b")]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::InvalidName { .. }), "{err}");
        let err = t.apply(&layer(&[file("", b"")])).unwrap_err();
        assert!(matches!(err, ApplyError::InvalidName { .. }), "{err}");
        let err = t.apply(&layer(&[symlink("s", "")])).unwrap_err();
        assert!(matches!(err, ApplyError::InvalidName { .. }), "{err}");
        let err = t.apply(&layer(&[file("a/.wh..", b"")])).unwrap_err();
        assert!(matches!(err, ApplyError::InvalidName { .. }), "{err}");
        let err = t
            .apply(&layer(&[Spec::new(EntryType::new(b'V'), "vol")]))
            .unwrap_err();
        assert!(
            matches!(err, ApplyError::Unsupported { kind: 'V', .. }),
            "{err}"
        );

        // Truncated in the middle of a file's content.
        let full = layer(&[file("big", vec![7u8; 10_000])]);
        let err = t.apply(&full[..512 + 4096]).unwrap_err();
        assert!(
            matches!(err, ApplyError::Io { .. } | ApplyError::Stream { .. }),
            "{err}"
        );
        // Garbage header.
        let mut junk = vec![0x41u8; 1024];
        junk.extend_from_slice(&[0u8; 1024]);
        assert!(t.apply(&junk).is_err());
        // Missing layer root.
        let err = apply_layer(&[][..], &t.base.join("nope"), &[]).unwrap_err();
        assert!(matches!(err, ApplyError::Root { .. }), "{err}");
        t.assert_outside_unchanged();
    }

    // ---------- hostile layers ----------

    #[test]
    fn hostile_dotdot_and_absolute_names_are_clamped_inside_root() {
        let t = TestDir::new("dotdot");
        let deep_escape = format!("../../../outside/{}", "long-escape-".repeat(10));
        let abs_name = format!("{}/abs-file", t.outside.to_str().unwrap());
        t.apply(&layer(&[
            file("../escape", b"1"),
            file(&abs_name, b"2"),
            file("a/../../x", b"3"),
            file("./../../../y", b"4"),
            file("../../../outside/sentinel", b"pwned"),
            file(&deep_escape, b"5"),
            dir("../../d"),
            symlink("../s", "target"),
            Spec::new(EntryType::Fifo, "../../fifo"),
        ]))
        .unwrap();
        assert_eq!(fs::read(t.p("escape")).unwrap(), b"1");
        assert_eq!(fs::read(t.p(&abs_name[1..])).unwrap(), b"2");
        assert_eq!(fs::read(t.p("x")).unwrap(), b"3");
        assert_eq!(fs::read(t.p("y")).unwrap(), b"4");
        assert_eq!(fs::read(t.p("outside/sentinel")).unwrap(), b"pwned");
        assert_eq!(fs::read(t.p(&deep_escape[9..])).unwrap(), b"5");
        assert!(lmeta(&t.p("d")).is_dir());
        assert!(lmeta(&t.p("s")).file_type().is_symlink());
        assert!(lmeta(&t.p("fifo")).file_type().is_fifo());
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_absolute_symlink_parent_stays_inside_root() {
        let t = TestDir::new("abssym");
        let outside = t.outside.to_str().unwrap().to_string();
        // evil -> /<abs outside>: resolved inside root, where that path does not exist.
        let res = t.apply(&layer(&[
            symlink("evil", &outside),
            file("evil/file", b"pwned"),
        ]));
        match res {
            Err(e) => assert!(matches!(e, ApplyError::Io { .. }), "{e}"),
            Ok(_) => assert_eq!(
                fs::read(t.p(&format!("{}/file", t.outside_rel()))).unwrap(),
                b"pwned"
            ),
        }
        assert!(!t.outside.join("file").exists());
        t.assert_outside_unchanged();

        // With the target present inside root, the write lands there.
        let t = TestDir::new("abssym2");
        let outside = t.outside.to_str().unwrap().to_string();
        t.apply(&layer(&[
            dir(t.outside_rel()),
            symlink("evil", &outside),
            file("evil/file", b"contained"),
            // `/` is root: through it, the same in-root directory. (Were it the host's `/`,
            // the write would hit outside/ and be caught.)
            symlink("top", "/"),
            file(format!("top/{}/via-top", t.outside_rel()), b"via top"),
        ]))
        .unwrap();
        assert_eq!(
            fs::read(t.p(&format!("{}/file", t.outside_rel()))).unwrap(),
            b"contained"
        );
        assert_eq!(
            fs::read(t.p(&format!("{}/via-top", t.outside_rel()))).unwrap(),
            b"via top"
        );
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_relative_symlink_climbing_out_stays_inside_root() {
        let t = TestDir::new("relsym");
        t.apply(&layer(&[
            symlink("evil", "../../.."),
            file("evil/outside/file", b"contained"),
            dir("a"),
            symlink("a/b", "../../../.."),
            file("a/b/outside/c-file", b"c"),
            dir("evil/outside/newdir"),
            Spec::new(EntryType::Fifo, "evil/outside/fifo"),
        ]))
        .unwrap();
        assert_eq!(fs::read(t.p("outside/file")).unwrap(), b"contained");
        assert_eq!(fs::read(t.p("outside/c-file")).unwrap(), b"c");
        assert!(lmeta(&t.p("outside/newdir")).is_dir());
        assert!(lmeta(&t.p("outside/fifo")).file_type().is_fifo());
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_hardlinks_to_host_paths_fail() {
        let t = TestDir::new("hostlink");
        let abs = t.sentinel.to_str().unwrap().to_string();
        for target in [
            abs.as_str(),
            "../outside/sentinel",
            "../../../outside/sentinel",
            "/../../../outside/sentinel",
        ] {
            let err = t.apply(&layer(&[hardlink("link", target)])).unwrap_err();
            assert!(
                matches!(err, ApplyError::LinkTargetMissing { .. }),
                "{target}: {err}"
            );
            assert!(fs::symlink_metadata(t.p("link")).is_err());
        }
        assert_eq!(lmeta(&t.sentinel).nlink(), 1);
        t.assert_outside_unchanged();

        // A same-named file inside root is what such a link resolves to.
        let t = TestDir::new("hostlink2");
        t.apply(&layer(&[
            file("outside/sentinel", b"inner"),
            hardlink("link", "../outside/sentinel"),
            file("srv/passwd", b"inner passwd"),
            hardlink("link2", "/../../srv/passwd"),
        ]))
        .unwrap();
        assert_eq!(
            lmeta(&t.p("link")).ino(),
            lmeta(&t.p("outside/sentinel")).ino()
        );
        assert_eq!(lmeta(&t.p("link2")).ino(), lmeta(&t.p("srv/passwd")).ino());
        assert_eq!(lmeta(&t.sentinel).nlink(), 1);
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_hardlink_through_symlinked_parent_fails() {
        let t = TestDir::new("linkparent");
        let outside = t.outside.to_str().unwrap().to_string();
        let err = t
            .apply(&layer(&[
                symlink("evil", &outside),
                hardlink("link", "evil/sentinel"),
            ]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::LinkTargetMissing { .. }), "{err}");
        let err = t
            .apply(&layer(&[
                symlink("evil2", "../../.."),
                hardlink("link", "evil2/outside/sentinel"),
            ]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::LinkTargetMissing { .. }), "{err}");
        // The new link's own parent through a symlink: created inside root.
        t.apply(&layer(&[
            file("t", b"t"),
            symlink("up", "../../.."),
            hardlink("up/outside/l", "t"),
        ]))
        .unwrap();
        assert_eq!(lmeta(&t.p("outside/l")).ino(), lmeta(&t.p("t")).ino());
        assert_eq!(lmeta(&t.sentinel).nlink(), 1);
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_hardlink_into_lower_layer_stays_inside_that_layer() {
        let t = TestDir::new("lowerescape");
        let lower = t.sibling("lower");
        fs::create_dir(&lower).unwrap();
        let outside = t.outside.to_str().unwrap().to_string();
        apply_layer(
            layer(&[
                symlink("lib", &outside),
                symlink("up", "../../.."),
                symlink("s", t.sentinel.to_str().unwrap()),
            ])
            .as_slice(),
            &lower,
            &[],
        )
        .unwrap();
        let lowers = [lower.clone()];
        for target in [
            "lib/sentinel",
            "up/outside/sentinel",
            t.sentinel.to_str().unwrap(),
            "../outside/sentinel",
        ] {
            let err = apply_layer(layer(&[hardlink("x", target)]).as_slice(), &t.root, &lowers)
                .unwrap_err();
            assert!(
                matches!(err, ApplyError::LinkTargetMissing { .. }),
                "{target}: {err}"
            );
        }
        // A symlink in the lower layer that points at the host file is not followed.
        let err =
            apply_layer(layer(&[hardlink("x", "s")]).as_slice(), &t.root, &lowers).unwrap_err();
        assert!(matches!(err, ApplyError::LinkTargetInvalid { .. }), "{err}");
        assert!(fs::symlink_metadata(t.p("x")).is_err());
        fs::remove_dir_all(&lower).unwrap();
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_entries_over_symlink_to_outside_replace_the_symlink() {
        let t = TestDir::new("oversym");
        let sentinel = t.sentinel.to_str().unwrap().to_string();
        let outside = t.outside.to_str().unwrap().to_string();
        t.apply(&layer(&[
            symlink("s", &sentinel),
            file("s", b"pwned").mode(0o777).owner(1234, 1234),
            symlink("d", &outside),
            dir("d").mode(0o777).owner(1234, 1234).mtime(1_000),
            symlink("c", &sentinel),
            Spec::new(EntryType::Char, "c")
                .dev(1, 3)
                .mode(0o777)
                .owner(1234, 1234),
            symlink("f", &sentinel),
            Spec::new(EntryType::Fifo, "f").mode(0o777),
            file("target", b"t"),
            symlink("h", &sentinel),
            hardlink("h", "target"),
            symlink("l", &sentinel),
            symlink("l", "elsewhere").owner(1234, 1234).mtime(1_000),
            symlink("w", &sentinel),
            file(".wh.w", b""),
            symlink("x", &sentinel),
            file("x", b"")
                .pax("SCHILY.xattr.user.pwn", "1")
                .pax("SCHILY.xattr.trusted.pwn", "1"),
        ]))
        .unwrap();
        assert_eq!(fs::read(t.p("s")).unwrap(), b"pwned");
        assert!(lmeta(&t.p("s")).is_file());
        assert!(lmeta(&t.p("d")).is_dir());
        assert!(lmeta(&t.p("c")).file_type().is_char_device());
        assert!(lmeta(&t.p("f")).file_type().is_fifo());
        assert_eq!(lmeta(&t.p("h")).ino(), lmeta(&t.p("target")).ino());
        assert_eq!(fs::read_link(t.p("l")).unwrap(), Path::new("elsewhere"));
        assert_eq!(lmeta(&t.p("w")).rdev(), 0);
        assert_eq!(getxattr(&t.p("x"), "user.pwn").unwrap(), b"1");
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_directory_through_symlink_to_outside_dir() {
        let t = TestDir::new("dirsym");
        let outside = t.outside.to_str().unwrap().to_string();
        let res = t.apply(&layer(&[
            symlink("d", &outside),
            dir("d/newdir").mode(0o777),
            dir("d/subdir").mode(0o777),
        ]));
        match res {
            Err(e) => assert!(matches!(e, ApplyError::Io { .. }), "{e}"),
            Ok(_) => assert!(t.p(&t.outside_rel()).join("newdir").is_dir()),
        }
        assert!(!t.outside.join("newdir").exists());
        t.assert_outside_unchanged();

        // Relative: resolved inside root, where it dangles (an error) ...
        let t = TestDir::new("dirsym2");
        let err = t
            .apply(&layer(&[symlink("d", "../../../outside"), dir("d/subdir")]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::Io { .. }), "{err}");
        t.assert_outside_unchanged();
        // ... or, once the directory exists inside root, where it lands.
        let t = TestDir::new("dirsym3");
        t.apply(&layer(&[
            dir("outside"),
            symlink("d", "../../../outside"),
            dir("d/subdir").mode(0o777).mtime(1_000),
        ]))
        .unwrap();
        assert!(lmeta(&t.p("outside/subdir")).is_dir());
        assert_eq!(lmeta(&t.p("outside/subdir")).mtime(), 1_000);
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_whiteouts_through_symlinked_parent() {
        let t = TestDir::new("whsym");
        let outside = t.outside.to_str().unwrap().to_string();
        let res = t.apply(&layer(&[
            symlink("evil", &outside),
            file("evil/.wh.sentinel", b""),
        ]));
        if let Err(e) = &res {
            assert!(matches!(e, ApplyError::Io { .. }), "{e}");
        }
        let res = t.apply(&layer(&[
            symlink("evil2", &outside),
            file("evil2/.wh..wh..opq", b""),
        ]));
        if let Err(e) = &res {
            assert!(matches!(e, ApplyError::Io { .. }), "{e}");
        }
        assert!(t.sentinel.is_file());
        t.assert_outside_unchanged();

        let t = TestDir::new("whsym2");
        t.apply(&layer(&[
            symlink("evil", "../../.."),
            file("evil/outside/.wh.sentinel", b""),
            file("evil/outside/.wh..wh..opq", b""),
            file("evil/.wh.outside-too", b""),
        ]))
        .unwrap();
        assert!(lmeta(&t.p("outside/sentinel")).file_type().is_char_device());
        assert_eq!(
            getxattr(&t.p("outside"), "trusted.overlay.opaque").unwrap(),
            b"y"
        );
        assert!(lmeta(&t.p("outside-too")).file_type().is_char_device());
        assert!(t.sentinel.is_file());
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_deferred_dir_mtime_does_not_follow_a_later_symlink() {
        let t = TestDir::new("dirtime");
        let outside = t.outside.to_str().unwrap().to_string();
        t.apply(&layer(&[
            dir("d").mtime(1_000),
            symlink("d", &outside).mtime(2_000),
            dir("p/q").mtime(1_000),
            symlink("p", "../../../outside"),
        ]))
        .unwrap();
        assert!(lmeta(&t.p("d")).file_type().is_symlink());
        assert_eq!(lmeta(&t.p("d")).mtime(), 2_000);
        t.assert_outside_unchanged();
    }

    #[test]
    fn hostile_parent_that_is_a_file_or_dangling_symlink_is_an_error() {
        let t = TestDir::new("notdir");
        let err = t
            .apply(&layer(&[file("f", b"x"), file("f/g", b"y")]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::Io { .. }), "{err}");
        let err = t
            .apply(&layer(&[symlink("loop", "loop"), file("loop/g", b"y")]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::Io { .. }), "{err}");
        // A magic link (here to outside/, held open) is not followed: inside root the path
        // does not exist.
        let outside_fd = File::open(&t.outside).unwrap();
        let magic = format!("/proc/self/fd/{}", outside_fd.as_raw_fd());
        let err = t
            .apply(&layer(&[symlink("dev", &magic), file("dev/g", b"y")]))
            .unwrap_err();
        assert!(matches!(err, ApplyError::Io { .. }), "{err}");
        drop(outside_fd);
        t.assert_outside_unchanged();
    }
}
