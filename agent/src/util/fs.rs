//! Reading a small file that another party may have replaced: never waits on a FIFO or a
//! device, never reads more than a bound. A hung mount can still block `open(2)` itself,
//! so callers run this through [`super::blocking`] with a timeout.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The whole file at `path`, if it is a regular file of at most `limit` bytes. Opened with
/// O_NONBLOCK, so a FIFO in its place gives an error at once instead of a reader that
/// waits for a writer forever.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (a FIFO, device or directory is never read)",
            path.display()
        ));
    }
    if meta.len() > limit {
        return Err(format!(
            "{} is {} bytes, more than the {limit} a certificate file can be",
            path.display(),
            meta.len()
        ));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > limit {
        return Err(format!(
            "{} grew past {limit} bytes while read",
            path.display()
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = std::env::temp_dir().join(format!("lvs-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("cert.pem");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_regular(&fifo, 1024).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(read_regular(&big, 1024).unwrap_err().contains("more than"));
        assert_eq!(read_regular(&big, 4096).unwrap().len(), 2048);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
