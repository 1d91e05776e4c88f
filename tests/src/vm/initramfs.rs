//! The guest's initramfs: busybox-static, the few modules needed to reach the host's root
//! file system over virtio-9p (virtio_pci, virtio_net, 9p, 9pnet_virtio, overlay and their
//! dependencies, loaded in dependency order), and an /init that mounts the host's `/`
//! read-only with a tmpfs overlay on top and hands over with `switch_root`.
//!
//! The Debian kernel has no CONFIG_IP_PNP and the host's own initrd does not know 9p, so the
//! lab builds its own. The archive is written by hand in the cpio "newc" format (a header of
//! hex fields per entry), which needs neither root nor the `cpio` tool, and is cached under
//! the cargo target directory keyed by kernel version and content hash.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Modules the initramfs loads, before their dependencies are added: the virtio devices,
/// 9p and overlay for the root file system, and IPVS with the schedulers the lab uses
/// (loading them here, signature stripped, is much faster under TCG than `modprobe` later).
pub const ROOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "9pnet_virtio",
    "9p",
    "overlay",
    "crc32c_generic",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wlc",
];

/// The trailer of a signed module (kernel's module_signature.h).
const SIG_MAGIC: &[u8] = b"~Module signature appended~\n";

/// Drops an appended module signature. Verifying it (RSA under TCG emulation) is most of
/// the time `insmod` takes; the Debian kernel does not enforce signatures, it only notes
/// an unsigned module in its log.
fn strip_signature(mut m: Vec<u8>) -> Vec<u8> {
    if !m.ends_with(SIG_MAGIC) {
        return m;
    }
    // struct module_signature: algo, hash, id_type, signer_len, key_id_len, pad[3],
    // __be32 sig_len, right before the magic.
    let end = m.len() - SIG_MAGIC.len();
    if end < 12 {
        return m;
    }
    let info = &m[end - 12..end];
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]) as usize;
    if sig_len + 12 > end {
        return m;
    }
    m.truncate(end - 12 - sig_len);
    m
}

/// /init, run by busybox sh as PID 1. Kernel parameters with `=` that the kernel does not
/// know arrive in its environment: `vminit` (the program to switch to), `vmarg` (its one
/// argument, may be empty) and `vmupper` (a host directory copied into the overlay's upper
/// directory before the switch, may be empty).
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "LVSLAB-INITRAMFS-FAIL: $*" >/dev/console; echo o >/proc/sysrq-trigger; sleep 5; }
for m in $(cat /modules.order); do
  insmod /lib/mod/$m.ko || echo "LVSLAB-INITRAMFS-WARN: insmod $m failed" >/dev/console
done
mkdir -p /ro /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /ro || fail "mount 9p hostroot"
mount -t tmpfs -o mode=0755,size=256m upper /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work /rw/upper/lab
if [ -n "$vmupper" ]; then
  cp -a "/ro$vmupper/." /rw/upper/ || fail "copy $vmupper into the overlay"
fi
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "mount overlay"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 labio /newroot/lab || fail "mount 9p labio"
echo "LVSLAB-INITRAMFS-DONE" >/dev/console
umount /proc /sys
umount /dev
if [ -n "$vmarg" ]; then
  exec switch_root /newroot "$vminit" "$vmarg"
fi
exec switch_root /newroot "$vminit"
"#;

/// The kernel the guest boots: `LVS_LAB_KERNEL=VERSION` or the newest /boot/vmlinuz-* whose
/// modules include IPVS.
pub fn kernel() -> Result<(String, PathBuf)> {
    if let Ok(v) = std::env::var("LVS_LAB_KERNEL") {
        let p = PathBuf::from(format!("/boot/vmlinuz-{v}"));
        if !p.exists() {
            bail!("LVS_LAB_KERNEL={v}: {} does not exist", p.display());
        }
        return Ok((v, p));
    }
    let mut found: Vec<String> = std::fs::read_dir("/boot")
        .context("reading /boot")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        })
        .filter(|v| Path::new(&format!("/lib/modules/{v}/kernel/net/netfilter/ipvs")).is_dir())
        .collect();
    found.sort();
    let v = found.pop().ok_or_else(|| {
        anyhow!(
            "no /boot/vmlinuz-* with IPVS modules under /lib/modules/VERSION: \
             install linux-image-amd64 (tests/setup.sh does)"
        )
    })?;
    let p = PathBuf::from(format!("/boot/vmlinuz-{v}"));
    Ok((v, p))
}

/// The uncompressed kernel (ELF `vmlinux`) for `ver`, extracted from the xz-compressed
/// bzImage once and cached. qemu boots it through its PVH entry point, which skips the
/// in-guest xz decompression: under TCG that alone took longer than the rest of the boot.
/// Falls back to the bzImage when it is not xz-compressed.
pub fn vmlinux(ver: &str, bzimage: &Path, cache_dir: &Path) -> Result<PathBuf> {
    let path = cache_dir.join(format!("vmlinux-{ver}"));
    if path.exists() {
        return Ok(path);
    }
    let data = std::fs::read(bzimage).with_context(|| format!("reading {}", bzimage.display()))?;
    const XZ: &[u8] = b"\xfd7zXZ\x00";
    let Some(at) = data.windows(XZ.len()).position(|w| w == XZ) else {
        return Ok(bzimage.to_path_buf());
    };
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    let tmp = cache_dir.join(format!(".{}.tmp", crate::netns::unique_prefix("vmlinux")));
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(&tmp)?)
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("running xz (xz-utils)")?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        // xz stops at the end of the stream; the bzImage's trailer after it is not read.
        let _ = stdin.write_all(&data[at..]);
    }
    child.wait()?;
    let elf = std::fs::read(&tmp)
        .map(|d| d.starts_with(b"\x7fELF"))
        .unwrap_or(false);
    if !elf {
        let _ = std::fs::remove_file(&tmp);
        return Ok(bzimage.to_path_buf());
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}

fn modinfo(ver: &str, field: &str, module: &str) -> Result<String> {
    let out = Command::new("modinfo")
        .args(["-k", ver, "-F", field, module])
        .output()
        .context("running modinfo (kmod)")?;
    if !out.status.success() {
        bail!(
            "modinfo -k {ver} {module}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The dependency closure of `ROOT_MODULES`, dependencies first, with each module's file.
/// Built-in modules (no file) are left out.
fn module_closure(ver: &str, extra: &[String]) -> Result<Vec<(String, PathBuf)>> {
    fn visit(
        ver: &str,
        m: &str,
        seen: &mut Vec<String>,
        out: &mut Vec<(String, PathBuf)>,
    ) -> Result<()> {
        let key = m.replace('-', "_");
        if seen.contains(&key) {
            return Ok(());
        }
        seen.push(key);
        // `softdep pre:` modules (e.g. libcrc32c needs a crc32c implementation) first.
        let soft = modinfo(ver, "softdep", m)?;
        for line in soft.lines() {
            if let Some(pre) = line.trim().strip_prefix("pre:") {
                for d in pre.split_whitespace() {
                    visit(ver, d, seen, out)?;
                }
            }
        }
        let deps = modinfo(ver, "depends", m)?;
        for d in deps.split(',').filter(|d| !d.is_empty()) {
            visit(ver, d, seen, out)?;
        }
        // An alias (e.g. `crc32c`) may name several modules: take them all.
        for file in modinfo(ver, "filename", m)?.lines() {
            if !file.starts_with('/') {
                continue; // built in
            }
            let p = PathBuf::from(file);
            let base = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split(".ko").next())
                .unwrap_or(m)
                .replace('-', "_");
            if !out.iter().any(|(_, q)| *q == p) {
                seen.push(base.clone());
                out.push((base, p));
            }
        }
        Ok(())
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for m in ROOT_MODULES
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
    {
        visit(ver, &m, &mut seen, &mut out)?;
    }
    Ok(out)
}

/// A module file's bytes, decompressed (Debian ships .ko, .ko.xz or .ko.zst depending on
/// the kernel build; busybox `insmod` takes a plain .ko).
fn module_bytes(p: &Path) -> Result<Vec<u8>> {
    let s = p.to_string_lossy();
    let tool = if s.ends_with(".xz") {
        Some("xz")
    } else if s.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    };
    match tool {
        None => std::fs::read(p).with_context(|| format!("reading {}", p.display())),
        Some(t) => {
            let out = Command::new(t)
                .arg("-dc")
                .arg(p)
                .output()
                .with_context(|| format!("running {t} -dc {}", p.display()))?;
            if !out.status.success() {
                bail!("{t} -dc {} failed", p.display());
            }
            Ok(out.stdout)
        }
    }
}

/// A minimal cpio "newc" writer: directories, regular files and character devices.
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Cpio {
        Cpio {
            buf: Vec::new(),
            ino: 1,
        }
    }

    fn pad4(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad4();
        self.buf.extend_from_slice(data);
        self.pad4();
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, data, (0, 0));
    }

    fn chardev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, &[], (major, minor));
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.buf
    }
}

/// Returns the path of the initramfs for kernel `ver` with [`ROOT_MODULES`] plus `extra`
/// modules, building it unless the cached copy under `cache_dir` matches (same kernel, same
/// modules, same /init, same busybox).
pub fn build(ver: &str, extra: &[String], cache_dir: &Path) -> Result<PathBuf> {
    let busybox = Path::new("/bin/busybox");
    let bb = std::fs::read(busybox)
        .context("reading /bin/busybox: install busybox-static (tests/setup.sh does)")?;
    let mods = module_closure(ver, extra)?;
    let mut h = DefaultHasher::new();
    INIT.hash(&mut h);
    SIG_MAGIC.hash(&mut h);
    bb.len().hash(&mut h);
    for (n, p) in &mods {
        n.hash(&mut h);
        p.hash(&mut h);
        if let Ok(md) = std::fs::metadata(p) {
            md.len().hash(&mut h);
        }
    }
    let path = cache_dir.join(format!("initramfs-{ver}-{:016x}.cpio", h.finish()));
    if path.exists() {
        return Ok(path);
    }
    let mut c = Cpio::new();
    for d in [
        "bin", "dev", "proc", "sys", "lib", "lib/mod", "ro", "rw", "newroot",
    ] {
        c.dir(d);
    }
    c.chardev("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &bb);
    c.file("init", 0o755, INIT.as_bytes());
    let mut order = String::new();
    for (n, p) in &mods {
        c.file(
            &format!("lib/mod/{n}.ko"),
            0o644,
            &strip_signature(module_bytes(p)?),
        );
        order.push_str(n);
        order.push('\n');
    }
    c.file("modules.order", 0o644, order.as_bytes());
    let bytes = c.finish();
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    // Concurrent tests may build at once: each writes its own temp file, the rename is atomic.
    let tmp = cache_dir.join(format!(".{}.tmp", crate::netns::unique_prefix("initrd")));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}
