//! Files on the shared directory and the shared webroot. Both are NFS exports that every
//! node's root writes, so whatever is found there may have been planted by another node:
//! a symlink to a file root should not touch, a FIFO that never opens, a sparse file of
//! terabytes, a directory standing in for a file. Every access of `lvs-cert` to them goes
//! through this module, so the rules hold in one place:
//!
//! - Reads open with `O_NOFOLLOW|O_NONBLOCK` (a symlink is refused, a FIFO never blocks),
//!   check with fstat that the descriptor is a regular file, and read at most a bound,
//!   failing with the file's path and the bound when it is larger.
//! - New files are created `O_CREAT|O_EXCL|O_NOFOLLOW` under a fresh random name (never the
//!   same name twice, never create+truncate), so a name planted in advance is never opened.
//!   Only the lock and its breaker have fixed names, which is how they exclude each other;
//!   they are created the same way and fail with EEXIST on anything found there.
//! - Replacing a file is a new random-named file, fsync, `renameat` onto the name, fsync
//!   of the directory: rename replaces a planted symlink, it never writes through it.
//! - Subdirectories are opened `O_NOFOLLOW|O_DIRECTORY` and used through their descriptor
//!   (`openat`, `mkdirat`, `renameat`, `unlinkat`), so a directory swapped for a symlink
//!   after it was checked is never followed. New directories (e.g. a certificate being
//!   published) are made by `mkdirat` under a fresh random name, EEXIST meaning "try
//!   another name", so nothing goes into a directory someone else made.
//!
//! The configured paths themselves (`--shared-dir`, `--webroot`, `--from`) are the admin's
//! and may be symlinks (e.g. into an automount); only what lies below them is distrusted.

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest JSON record read from the share (the lock's record, `renewal.json`).
pub const MAX_RECORD: u64 = 64 * 1024;
/// Largest PEM file read from the share (a chain of a few certificates, a key).
pub const MAX_PEM: u64 = 1024 * 1024;

/// How many fresh names are tried before giving up (each EEXIST means the name was taken,
/// which with 128 random bits only happens when someone is guessing or replaying names).
const TRIES: usize = 16;

/// A fresh random name: `prefix` and 128 random bits in hex.
pub fn random_name(prefix: &str) -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        // No kernel randomness: still never repeat within this process.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..8].copy_from_slice(&(t as u64).to_le_bytes());
        b[8..].copy_from_slice(&(n ^ u64::from(std::process::id()) << 32).to_le_bytes());
    }
    let mut s = String::with_capacity(prefix.len() + 32);
    s.push_str(prefix);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// What kind of file a stat describes, for messages.
fn kind(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "not a regular file",
    }
}

/// An error that names the file; the kind is kept (callers test for NotFound).
fn err_at(path: &Path, e: io::Error) -> io::Error {
    let what = match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ELOOP) => "is a symbolic link, refused (the shared directory is written by \
                               other nodes; remove it)"
            .to_string(),
        Some(Errno::ENOTDIR) => "is not a directory (or a path component is a symbolic link), \
                                 refused; remove it"
            .to_string(),
        _ => e.to_string(),
    };
    io::Error::new(e.kind(), format!("{}: {what}", path.display()))
}

fn nix_err(path: &Path, e: Errno) -> io::Error {
    err_at(path, io::Error::from(e))
}

/// Only plain names are looked up under a directory: no `/`, no `..`.
fn check_name(dir: &Path, name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: `{name}` is not a plain file name", dir.display()),
        ));
    }
    Ok(())
}

/// Fails unless the open file is a regular file of at most `max` bytes.
fn check_regular(path: &Path, f: &File, max: u64) -> io::Result<std::fs::Metadata> {
    let m = f.metadata().map_err(|e| err_at(path, e))?;
    if !m.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: is {}, not a regular file; refused (remove it)",
                path.display(),
                kind(m.mode())
            ),
        ));
    }
    if m.len() > max {
        return Err(too_big(path, max));
    }
    Ok(m)
}

fn too_big(path: &Path, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: larger than {} bytes, refused without reading it (remove it)",
            path.display(),
            max
        ),
    )
}

/// Reads all of `f` but at most `max` bytes (the size may grow after the fstat).
fn read_all(path: &Path, f: File, len: u64, max: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len.min(max) as usize);
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| err_at(path, e))?;
    if buf.len() as u64 > max {
        return Err(too_big(path, max));
    }
    Ok(buf)
}

/// Opens the file at `path` for reading: the last component must not be a symlink, the
/// open never blocks (FIFO), and it must be a regular file of at most `max` bytes.
pub fn open_regular(path: &Path, max: u64) -> io::Result<(File, std::fs::Metadata)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| err_at(path, e))?;
    let m = check_regular(path, &f, max)?;
    Ok((f, m))
}

/// The content of the regular file at `path`, at most `max` bytes (see [`open_regular`]).
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (f, m) = open_regular(path, max)?;
    read_all(path, f, m.len(), max)
}

/// The same as text; not UTF-8 is an error naming the file.
pub fn read_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not UTF-8 text", path.display()),
        )
    })
}

/// True when `path` is a regular file (not through a symlink).
pub fn is_plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// An open directory of the share; everything below it is reached through its descriptor.
#[derive(Clone)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

impl Dir {
    /// Opens a configured directory (the admin's path: may be a symlink).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).bits())
            .open(path)
            .map_err(|e| err_at(path, e))?;
        Ok(Dir {
            fd: Arc::new(f.into()),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn at(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The subdirectory `name`, never through a symlink.
    pub fn sub(&self, name: &str) -> io::Result<Dir> {
        check_name(&self.path, name)?;
        let p = self.at(name);
        let fd = nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| nix_err(&p, e))?;
        Ok(Dir {
            fd: Arc::new(fd),
            path: p,
        })
    }

    /// The subdirectory `name`, made with `mode` if missing; an existing symlink or
    /// non-directory there is refused.
    pub fn sub_create(&self, name: &str, mode: u32) -> io::Result<Dir> {
        check_name(&self.path, name)?;
        match nix::sys::stat::mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(nix_err(&self.at(name), e)),
        }
        self.sub(name)
    }

    /// A new directory under a fresh random name starting with `prefix`, made by this call
    /// (EEXIST: another name is tried).
    pub fn mkdir_unique(&self, prefix: &str, mode: u32) -> io::Result<(String, Dir)> {
        for _ in 0..TRIES {
            let name = random_name(prefix);
            match nix::sys::stat::mkdirat(
                self.fd.as_fd(),
                name.as_str(),
                Mode::from_bits_truncate(mode),
            ) {
                Ok(()) => return Ok((name.clone(), self.sub(&name)?)),
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(nix_err(&self.at(&name), e)),
            }
        }
        Err(exhausted(&self.path, prefix))
    }

    /// Creates `name` with `O_CREAT|O_EXCL|O_NOFOLLOW`: anything already there (a symlink
    /// included) is an AlreadyExists error.
    pub fn create_named(&self, name: &str, mode: u32) -> io::Result<File> {
        check_name(&self.path, name)?;
        nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map(File::from)
        .map_err(|e| nix_err(&self.at(name), e))
    }

    /// A new file under a fresh random name starting with `prefix`, created by this call
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`; EEXIST: another name is tried).
    pub fn create_unique(&self, prefix: &str, mode: u32) -> io::Result<(String, File)> {
        for _ in 0..TRIES {
            let name = random_name(prefix);
            match self.create_named(&name, mode) {
                Ok(f) => return Ok((name, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(exhausted(&self.path, prefix))
    }

    /// Replaces `name` atomically: a new random-named file, fsync, rename, fsync of the
    /// directory. A symlink at `name` is replaced, never written through.
    pub fn write_atomic(&self, name: &str, data: &[u8], mode: u32) -> io::Result<()> {
        check_name(&self.path, name)?;
        let (tmp, mut f) = self.create_unique(".lvs-cert-tmp-", mode)?;
        let res = (|| {
            // O_CREAT's mode is masked by the umask; set it exactly, before any byte.
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
                .and_then(|_| f.write_all(data))
                .and_then(|_| f.sync_all())
                .map_err(|e| err_at(&self.at(&tmp), e))?;
            self.rename(&tmp, name)?;
            self.sync()
        })();
        if res.is_err() {
            let _ = self.remove(&tmp);
        }
        res
    }

    /// Reads `name` under this directory with the rules of [`read_bounded`].
    pub fn read_bounded(&self, name: &str, max: u64) -> io::Result<Vec<u8>> {
        check_name(&self.path, name)?;
        let p = self.at(name);
        let fd = nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| nix_err(&p, e))?;
        let f = File::from(fd);
        let m = check_regular(&p, &f, max)?;
        read_all(&p, f, m.len(), max)
    }

    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(&self.path, from)?;
        check_name(&self.path, to)?;
        nix::fcntl::renameat(self.fd.as_fd(), from, self.fd.as_fd(), to)
            .map_err(|e| nix_err(&self.at(to), e))
    }

    /// Unlinks the file `name` (a symlink there is removed, not followed).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        check_name(&self.path, name)?;
        nix::unistd::unlinkat(
            self.fd.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(|e| nix_err(&self.at(name), e))
    }

    /// Removes the empty directory `name`.
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        check_name(&self.path, name)?;
        nix::unistd::unlinkat(self.fd.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir)
            .map_err(|e| nix_err(&self.at(name), e))
    }

    /// Whether `name` is (not through a symlink) a regular file.
    pub fn is_file(&self, name: &str) -> bool {
        check_name(&self.path, name).is_ok()
            && nix::sys::stat::fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|s| {
                    SFlag::from_bits_truncate(s.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
                })
    }

    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(self.fd.as_fd()).map_err(|e| nix_err(&self.path, e))
    }
}

fn exhausted(dir: &Path, prefix: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{}: {TRIES} fresh names {prefix}* were all taken; someone is creating them there",
            dir.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_refuse_symlinks_fifos_and_big_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("ok"), b"hello").unwrap();
        assert_eq!(read_bounded(&p.join("ok"), 5).unwrap(), b"hello");
        let e = read_bounded(&p.join("ok"), 4).unwrap_err().to_string();
        assert!(
            e.contains("larger than 4 bytes") && e.contains("/ok"),
            "{e}"
        );
        std::os::unix::fs::symlink(p.join("ok"), p.join("link")).unwrap();
        let e = read_bounded(&p.join("link"), 99).unwrap_err().to_string();
        assert!(e.contains("symbolic link") && e.contains("/link"), "{e}");
        nix::unistd::mkfifo(&p.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_bounded(&p.join("fifo"), 99).unwrap_err().to_string();
        assert!(e.contains("a FIFO") && e.contains("/fifo"), "{e}");
        let dir = Dir::open(p).unwrap();
        let e = dir.read_bounded("fifo", 99).unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
        let e = dir.sub("link").err().unwrap().to_string();
        assert!(e.contains("/link"), "{e}");
    }

    #[test]
    fn fresh_names_and_atomic_replace_through_no_symlink() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        let (a, _) = dir.create_unique(".x-", 0o600).unwrap();
        let (b, _) = dir.create_unique(".x-", 0o600).unwrap();
        assert_ne!(a, b);
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("rec")).unwrap();
        assert!(dir.create_named("rec", 0o600).is_err());
        dir.write_atomic("rec", b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(d.path().join("rec")).unwrap(), b"new");
        let (n, sub) = dir.mkdir_unique(".tmp-", 0o700).unwrap();
        assert!(n.starts_with(".tmp-"));
        sub.write_atomic("f", b"1", 0o600).unwrap();
        assert!(sub.is_file("f"));
    }
}
