//! Docker's copy-up: an empty volume mounted over a directory of the image starts with that
//! directory's content. The image side is untrusted: it is opened inside the container's
//! root (`RESOLVE_IN_ROOT`) and walked by file descriptor without following any link, so a
//! symlink in the image can never make berthd read the host.

use crate::errors::{Error, Result};
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn io(what: &str, e: nix::Error) -> Error {
    Error::internal(format!("copying the image's content into the volume ({what}): {e}"))
}

/// Copy `rootfs/<dst>` (a directory of the container's root) into `volume` if the volume is
/// empty and the directory exists; the volume directory takes its owner and mode.
pub fn copy_up(rootfs: &Path, dst: &str, volume: &Path) -> Result<bool> {
    if std::fs::read_dir(volume)?.next().is_some() {
        return Ok(false);
    }
    let root = std::fs::File::open(rootfs)?;
    let how = OpenHow::new().flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let src = match openat2(root.as_raw_fd(), dst.trim_start_matches('/'), how) {
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) }, // SAFETY: a fresh fd from openat2, owned here
        Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => return Ok(false),
        Err(e) => return Err(io(dst, e)),
    };
    let dest = std::fs::File::open(volume)?;
    copy_dir(src.as_raw_fd(), dest.as_raw_fd(), 0)?;
    // The volume's root takes the image directory's owner and mode (e.g. a database's data dir).
    let st = nix::sys::stat::fstat(src.as_raw_fd()).map_err(|e| io(dst, e))?;
    nix::unistd::fchown(dest.as_raw_fd(), Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid))).map_err(|e| io(dst, e))?;
    nix::sys::stat::fchmod(dest.as_raw_fd(), Mode::from_bits_truncate(st.st_mode & 0o7777)).map_err(|e| io(dst, e))?;
    Ok(true)
}

fn copy_dir(src: RawFd, dst: RawFd, depth: usize) -> Result<()> {
    if depth > 256 {
        return Err(Error::invalid("copying the image's content into the volume: directories nested too deep"));
    }
    let mut dir = nix::dir::Dir::openat(Some(src), ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| io("readdir", e))?;
    let names: Vec<std::ffi::CString> = dir.iter().flatten().map(|e| e.file_name().to_owned()).filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..").collect();
    for name in names {
        let n = name.to_string_lossy().into_owned();
        let st = fstatat(Some(src), name.as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| io(&n, e))?;
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match kind {
            SFlag::S_IFDIR => {
                mkdirat(Some(dst), name.as_c_str(), Mode::from_bits_truncate(0o700)).map_err(|e| io(&n, e))?;
                let s = openat(Some(src), name.as_c_str(), OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| io(&n, e))?;
                let d = openat(Some(dst), name.as_c_str(), OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| io(&n, e))?;
                // SAFETY: fresh fds from openat, owned here and closed on drop.
                let (s, d) = unsafe { (OwnedFd::from_raw_fd(s), OwnedFd::from_raw_fd(d)) };
                copy_dir(s.as_raw_fd(), d.as_raw_fd(), depth + 1)?;
            }
            SFlag::S_IFREG => {
                let s = openat(Some(src), name.as_c_str(), OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| io(&n, e))?;
                let d = openat(Some(dst), name.as_c_str(), OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o600)).map_err(|e| io(&n, e))?;
                // SAFETY: fresh fds from openat, owned by the Files.
                let (mut s, mut d) = unsafe { (std::fs::File::from_raw_fd(s), std::fs::File::from_raw_fd(d)) };
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let k = s.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    d.write_all(&buf[..k])?;
                }
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(src), name.as_c_str()).map_err(|e| io(&n, e))?;
                nix::unistd::symlinkat(target.as_os_str(), Some(dst), name.as_c_str()).map_err(|e| io(&n, e))?;
            }
            SFlag::S_IFIFO | SFlag::S_IFCHR | SFlag::S_IFBLK => {
                nix::sys::stat::mknodat(Some(dst), name.as_c_str(), kind, Mode::from_bits_truncate(0o600), st.st_rdev).map_err(|e| io(&n, e))?;
            }
            _ => continue, // sockets are not content
        }
        fchownat(Some(dst), name.as_c_str(), Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| io(&n, e))?;
        if kind != SFlag::S_IFLNK {
            // After chown, which clears setuid bits.
            fchmodat(Some(dst), name.as_c_str(), mode, FchmodatFlags::FollowSymlink).map_err(|e| io(&n, e))?;
        }
        let times = [
            nix::sys::time::TimeSpec::new(st.st_atime, st.st_atime_nsec),
            nix::sys::time::TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
        ];
        let _ = nix::sys::stat::utimensat(Some(dst), name.as_c_str(), &times[0], &times[1], nix::sys::stat::UtimensatFlags::NoFollowSymlink);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    #[test]
    fn copies_content_and_never_follows_links_out() {
        let t = std::env::temp_dir().join(format!("berth-copyup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let (root, vol, secret) = (t.join("root"), t.join("vol"), t.join("host-secret"));
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(&secret, "host only").unwrap();
        std::fs::write(root.join("data/sub/f"), "hello").unwrap();
        std::fs::set_permissions(root.join("data/sub/f"), std::fs::Permissions::from_mode(0o640)).unwrap();
        symlink("../../etc/passwd", root.join("data/link")).unwrap();
        // A link in the path itself: resolved inside the root, not on the host.
        symlink(secret.to_str().unwrap(), root.join("escape")).unwrap();
        assert!(copy_up(&root, "/data", &vol).unwrap());
        assert_eq!(std::fs::read_to_string(vol.join("sub/f")).unwrap(), "hello");
        assert_eq!(std::fs::metadata(vol.join("sub/f")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_link(vol.join("link")).unwrap().to_str().unwrap(), "../../etc/passwd");
        // Not empty any more: a second mount copies nothing.
        assert!(!copy_up(&root, "/data", &vol).unwrap());
        let vol2 = t.join("vol2");
        std::fs::create_dir_all(&vol2).unwrap();
        assert!(!copy_up(&root, "/escape", &vol2).unwrap(), "a link to a host path must not be followed");
        assert!(!copy_up(&root, "/missing", &vol2).unwrap());
        assert_eq!(std::fs::read_dir(&vol2).unwrap().count(), 0);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
