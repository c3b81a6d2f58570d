// TEMPORARY bring-up stub; replaced by the real applier.
pub struct ApplyStats { pub entries: u64, pub bytes: u64 }
#[derive(Debug, thiserror::Error)]
pub enum ApplyError { #[error("{0}")] Io(#[from] std::io::Error) }
pub fn apply_layer<R: std::io::Read>(tar: R, root: &std::path::Path, _lowers: &[std::path::PathBuf]) -> Result<ApplyStats, ApplyError> {
    let mut a = tar::Archive::new(tar);
    a.set_preserve_permissions(true); a.set_preserve_ownerships(true); a.set_unpack_xattrs(true);
    let mut n = 0;
    for e in a.entries()? { let mut e = e?; e.unpack_in(root)?; n += 1; }
    Ok(ApplyStats { entries: n, bytes: 0 })
}
