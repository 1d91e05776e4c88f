//! A qemu guest in the lab: the Debian kernel from `linux-image-amd64`, booted under TCG
//! (nested KVM hangs on these machines), running the host's own userland from a read-only
//! 9p share of `/` with a tmpfs overlay on top. It is what gives the lab a real IPVS
//! director: the host kernel has no IPVS, the guest kernel has it as modules.
//!
//! The guest joins the lab's bridge through a tap created by qemu inside the bridge's
//! namespace. A second, writable 9p share (`labio`, mounted at `/lab` in the guest) carries
//! commands in and their output, logs and reports out. The serial console goes to a file on
//! the host; readiness is waited for through markers printed there, with a hard bound.
//!
//! Two kinds of guest:
//! - a script guest ([`Vm::boot_script`]): a small shell PID 1 runs a setup script, prints
//!   `LVSLAB-READY`, then serves commands from `/lab/cmd` ([`Vm::run`], [`Vm::ok`]);
//! - a systemd guest ([`Vm::boot_systemd`]): systemd as PID 1 on the host's userland, with
//!   files (units, symlinks) copied from a host directory into the overlay before the switch.
//!
//! The qemu process is killed by PID and the guest's temporary files removed on drop, also
//! when the test panics. `LVS_LAB_KEEP_VM=1` keeps the files (console log included) for
//! debugging; see docs/lab.md.

pub mod director;
pub mod initramfs;

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bound on a script guest's boot, from qemu's start to the ready marker.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// [`READY_TIMEOUT`], unless `LVS_LAB_VM_BOOT_BOUND=SECONDS` raises it for a machine known
/// to be overloaded (a developer machine shared by parallel builds). CI keeps the 20 s.
pub fn ready_bound() -> Duration {
    std::env::var("LVS_LAB_VM_BOOT_BOUND")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(READY_TIMEOUT)
}

/// The marker a script guest prints on its console once its setup script has succeeded.
pub const READY_MARKER: &str = "LVSLAB-READY";

/// Where a guest runs and how it is wired.
#[derive(Clone, Debug)]
pub struct VmOpts {
    /// A short tag for file and tap names.
    pub tag: String,
    /// The network namespace qemu runs in (the lab bridge's), and the bridge the tap joins.
    /// `None`: the guest has no network card.
    pub bridge: Option<(String, String)>,
    /// The guest NIC's MAC address.
    pub mac: String,
    pub memory_mb: u32,
    /// Extra kernel command-line words.
    pub kernel_args: Vec<String>,
    /// A host directory whose contents are copied into the overlay's upper directory before
    /// `switch_root` (e.g. `etc/systemd/system/multi-user.target.wants/x.service` symlinks).
    pub upper: Option<PathBuf>,
    /// Kernel modules loaded by the initramfs besides [`initramfs::ROOT_MODULES`] (with
    /// their dependencies), e.g. `nf_tables`.
    pub modules: Vec<String>,
    /// The guest's host-side directory (console log, command share); default
    /// `$TMPDIR/<unique>-vm`. Removed on drop either way.
    pub workdir: Option<PathBuf>,
}

impl VmOpts {
    pub fn new(tag: &str) -> VmOpts {
        VmOpts {
            tag: tag.to_string(),
            bridge: None,
            mac: "02:00:00:00:00:02".into(),
            memory_mb: 384,
            kernel_args: Vec::new(),
            upper: None,
            modules: Vec::new(),
            workdir: None,
        }
    }

    /// Joins the guest to `bridge` inside namespace `netns` (qemu runs in that namespace).
    pub fn on_bridge(mut self, netns: &str, bridge: &str) -> VmOpts {
        self.bridge = Some((netns.to_string(), bridge.to_string()));
        self
    }
}

/// The result of one command run in a script guest.
#[derive(Debug, Clone)]
pub struct CmdOut {
    pub rc: i32,
    /// stdout and stderr, interleaved.
    pub out: String,
}

pub struct Vm {
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
    console: PathBuf,
    io: PathBuf,
    seq: AtomicU64,
    started: Instant,
    keep: bool,
}

/// PID 1 of a script guest (host /bin/sh after switch_root). The setup script lies next to
/// it (`setup.sh`, in the guest's host-side temp directory, seen through the root share).
const RUNNER: &str = r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 run /run
exec </dev/null >/dev/ttyS0 2>&1
hostname lvslab-vm
ip link set lo up
mkdir -p /lab/cmd
if sh "${0%/*}/setup.sh" >/lab/setup.log 2>&1; then
  echo LVSLAB-READY
else
  echo "LVSLAB-FAIL: setup script exited $?"
  cat /lab/setup.log
  echo o >/proc/sysrq-trigger
fi
while :; do
  for f in /lab/cmd/*.sh; do
    [ -e "$f" ] || continue
    id=${f%.sh}
    mv "$f" "$id.run"
    sh "$id.run" >"$id.out" 2>&1 </dev/null
    echo $? >"$id.rc.tmp"
    mv "$id.rc.tmp" "$id.rc"
  done
  sleep 0.02
done
"#;

fn cache_dir() -> PathBuf {
    crate::bins::target_dir().join("lvs-lab-vm")
}

/// Checks what a guest needs and says which package is missing.
pub fn preflight() -> Result<()> {
    crate::netns::require_root();
    for (bin, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("ipvsadm", "ipvsadm"),
        ("keepalived", "keepalived"),
        ("modinfo", "kmod"),
    ] {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            bail!("{bin} not found: install {pkg} (tests/setup.sh does)");
        }
    }
    if !Path::new("/bin/busybox").exists() {
        bail!("/bin/busybox not found: install busybox-static (tests/setup.sh does)");
    }
    if !Path::new("/dev/net/tun").exists() {
        bail!("/dev/net/tun missing: the guest's tap needs the tun driver");
    }
    Ok(())
}

impl Vm {
    /// Boots a script guest: the host's userland, a shell as PID 1 that runs `setup` (a
    /// shell script, run with `sh`) and then serves commands. Returns once the guest is
    /// ready, or an error naming the 20 s bound with the console's tail.
    pub fn boot_script(opts: &VmOpts, setup: &str) -> Result<Vm> {
        // One boot at a time in this process: under TCG a boot keeps a core busy, and two
        // boots sharing the cores would each take longer than the bound allows. A guest that
        // is already up is idle and does not count.
        static BOOT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = BOOT.lock().unwrap_or_else(|e| e.into_inner());
        let mut vm = Vm::spawn(opts, |dir| {
            let runner = dir.join("runner.sh");
            let setup_path = dir.join("setup.sh");
            std::fs::write(&runner, RUNNER)?;
            std::fs::write(&setup_path, setup)?;
            Ok(vec![
                "vminit=/bin/sh".to_string(),
                format!("vmarg={}", runner.display()),
            ])
        })?;
        vm.wait_console(READY_MARKER, ready_bound())?;
        Ok(vm)
    }

    /// Boots systemd as PID 1 on the host's userland (`systemd.unit=multi-user.target`
    /// unless `opts.kernel_args` names another unit). Returns at once: wait with
    /// [`Vm::wait_console`] or [`Vm::wait_file`]; the guest sees [`Vm::io_dir`] at `/lab`.
    pub fn boot_systemd(opts: &VmOpts) -> Result<Vm> {
        let mut args = vec!["vminit=/lib/systemd/systemd".to_string()];
        if !opts
            .kernel_args
            .iter()
            .any(|a| a.starts_with("systemd.unit="))
        {
            args.push("systemd.unit=multi-user.target".into());
        }
        Vm::spawn(opts, move |_| Ok(args))
    }

    fn spawn(opts: &VmOpts, prepare: impl FnOnce(&Path) -> Result<Vec<String>>) -> Result<Vm> {
        preflight()?;
        let (ver, kernel) = initramfs::kernel()?;
        let initrd = initramfs::build(&ver, &opts.modules, &cache_dir())?;
        let kernel = initramfs::vmlinux(&ver, &kernel, &cache_dir())?;
        let dir =
            std::env::temp_dir().join(format!("{}-vm", crate::netns::unique_prefix(&opts.tag)));
        let io = dir.join("io");
        std::fs::create_dir_all(io.join("cmd"))
            .with_context(|| format!("creating {}", io.display()))?;
        let console = dir.join("console.log");
        let mut args = prepare(&dir)?;
        if let Some(up) = &opts.upper {
            if !up.is_absolute() || !up.is_dir() {
                bail!("VmOpts.upper {}: not an absolute directory", up.display());
            }
            args.push(format!("vmupper={}", up.display()));
        }
        args.extend(opts.kernel_args.iter().cloned());
        let append = format!(
            "console=ttyS0 panic=-1 net.ifnames=0 mitigations=off cryptomgr.notests quiet loglevel=3 {}",
            args.join(" ")
        );
        let tap = format!(
            "vt{}",
            opts.tag
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(10)
                .collect::<String>()
        );
        let mut cmd = match &opts.bridge {
            Some((ns, _)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
                c
            }
            None => Command::new("qemu-system-x86_64"),
        };
        cmd.args(["-accel", "tcg", "-cpu", "max", "-smp", "1"])
            .args(["-m", &opts.memory_mb.to_string()])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &append])
            .args([
                "-chardev",
                &format!("file,id=con,path={}", console.display()),
                "-serial",
                "chardev:con",
            ])
            .args([
                "-fsdev",
                "local,id=hostroot,path=/,security_model=none,readonly=on",
                "-device",
                "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
                "-fsdev",
                &format!("local,id=labio,path={},security_model=none", io.display()),
                "-device",
                "virtio-9p-pci,fsdev=labio,mount_tag=labio",
            ]);
        if opts.bridge.is_some() {
            cmd.args([
                "-netdev",
                &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
                "-device",
                &format!("virtio-net-pci,netdev=n0,mac={}", opts.mac),
            ]);
        }
        let log = std::fs::File::create(dir.join("qemu.log"))?;
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
        // parent; it makes the kernel kill qemu when the thread that started it ends, so a
        // test killed from outside (no Drop) leaves no guest behind. Keep a Vm on the thread
        // that booted it.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting qemu-system-x86_64")?;
        let mut vm = Vm {
            pid: child.id(),
            child: Some(child),
            dir,
            console,
            io,
            seq: AtomicU64::new(0),
            started: Instant::now(),
            keep: std::env::var_os("LVS_LAB_KEEP_VM").is_some(),
        };
        if let Some((ns, br)) = &opts.bridge {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let out = Command::new("ip")
                    .args(["netns", "exec", ns, "sh", "-c"])
                    .arg(format!("ip link set {tap} master {br} up"))
                    .output()?;
                if out.status.success() {
                    break;
                }
                if let Some(e) = vm.exited() {
                    bail!(
                        "qemu exited before creating its tap ({e}): {}",
                        vm.qemu_log()
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "tap {tap} did not appear in namespace {ns} in 10 s: {}",
                        vm.qemu_log()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(vm)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills qemu (SIGKILL to its PID, the guest dies like a host losing power) and reaps
    /// it. The guest's files stay until drop.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().context("killing qemu")?;
            c.wait().context("reaping qemu")?;
        }
        Ok(())
    }

    /// The host directory the guest sees at `/lab` (read-write).
    pub fn io_dir(&self) -> &Path {
        &self.io
    }

    /// The guest's serial console log on the host.
    pub fn console_path(&self) -> &Path {
        &self.console
    }

    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// The last `n` lines of the console, for error messages.
    pub fn console_tail(&self, n: usize) -> String {
        let c = self.console();
        let lines: Vec<&str> = c.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn qemu_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }

    /// Time since qemu was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until the console shows `marker`, counted from qemu's start. Fails early when
    /// the guest reports a failure or qemu exits; the error carries the console's tail.
    pub fn wait_console(&mut self, marker: &str, bound: Duration) -> Result<Duration> {
        loop {
            let c = self.console();
            if c.contains(marker) {
                return Ok(self.started.elapsed());
            }
            for bad in ["LVSLAB-FAIL", "LVSLAB-INITRAMFS-FAIL", "Kernel panic"] {
                if c.contains(bad) {
                    bail!(
                        "guest failed before `{marker}` ({bad}); console {}:\n{}",
                        self.console.display(),
                        self.console_tail(40)
                    );
                }
            }
            if let Some(st) = self.exited() {
                bail!(
                    "qemu exited ({st}) before `{marker}`: {}\nconsole {}:\n{}",
                    self.qemu_log(),
                    self.console.display(),
                    self.console_tail(40)
                );
            }
            if self.started.elapsed() > bound {
                bail!(
                    "guest not ready: no `{marker}` on its console within {} s of starting qemu \
                     (TCG; is the machine overloaded?); console {}:\n{}",
                    bound.as_secs(),
                    self.console.display(),
                    self.console_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the guest has written `rel` (a path under [`Vm::io_dir`]).
    pub fn wait_file(&mut self, rel: &str, timeout: Duration) -> Result<PathBuf> {
        let p = self.io.join(rel);
        let deadline = Instant::now() + timeout;
        loop {
            if p.exists() {
                return Ok(p);
            }
            if let Some(st) = self.exited() {
                bail!(
                    "qemu exited ({st}) before the guest wrote /lab/{rel}; console:\n{}",
                    self.console_tail(40)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the guest did not write /lab/{rel} within {} s; console {}:\n{}",
                    timeout.as_secs(),
                    self.console.display(),
                    self.console_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `cmd` with `sh` in a script guest and returns its exit code and output. A
    /// command that starts a daemon must redirect the daemon's output itself (e.g. to a
    /// file under /lab), or it holds the command's output file open.
    pub fn run_timeout(&self, cmd: &str, timeout: Duration) -> Result<CmdOut> {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let base = self.io.join("cmd").join(format!("c{n:06}"));
        let tmp = base.with_extension("tmp");
        std::fs::write(&tmp, cmd)?;
        std::fs::rename(&tmp, base.with_extension("sh"))?;
        let rc_path = base.with_extension("rc");
        let deadline = Instant::now() + timeout;
        while !rc_path.exists() {
            if Instant::now() > deadline {
                bail!(
                    "guest command did not finish within {} s: {cmd}\nconsole:\n{}",
                    timeout.as_secs(),
                    self.console_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let rc: i32 = std::fs::read_to_string(&rc_path)?
            .trim()
            .parse()
            .map_err(|e| anyhow!("guest rc file: {e}"))?;
        let out = std::fs::read_to_string(base.with_extension("out")).unwrap_or_default();
        for ext in ["rc", "out", "run"] {
            let _ = std::fs::remove_file(base.with_extension(ext));
        }
        Ok(CmdOut { rc, out })
    }

    pub fn run(&self, cmd: &str) -> Result<CmdOut> {
        self.run_timeout(cmd, Duration::from_secs(60))
    }

    /// Runs `cmd` and panics with its output unless it exits 0; returns the output.
    pub fn ok(&self, cmd: &str) -> String {
        let r = self
            .run(cmd)
            .unwrap_or_else(|e| panic!("guest `{cmd}`: {e:#}"));
        assert_eq!(r.rc, 0, "guest `{cmd}` exited {}:\n{}", r.rc, r.out);
        r.out
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.keep {
            eprintln!(
                "LVS_LAB_KEEP_VM: guest files kept in {} (console.log, qemu.log, io/)",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
