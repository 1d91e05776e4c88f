//! Network namespaces owned by one test: unique names, commands run inside, processes
//! tracked by PID, and removal on drop even when the test panics.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short prefix unique to this process and call, so concurrent tests never collide.
pub fn unique_prefix(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    format!("lvt{}x{}{}", std::process::id(), n, tag)
}

/// Fails the test loudly (never skips) when it cannot build namespaces.
pub fn require_root() {
    let uid = unsafe_free_uid();
    assert_eq!(
        uid, 0,
        "lab tests need root and `ip netns` (run the README test command as root); refusing to skip"
    );
    let ip = Command::new("ip").arg("-V").output();
    assert!(
        ip.map(|o| o.status.success()).unwrap_or(false),
        "lab tests need iproute2 (`ip`): install it with .ci/run"
    );
}

fn unsafe_free_uid() -> u32 {
    nix::unistd::Uid::effective().as_raw()
}

/// Runs a host command outside any namespace that only *reads* or manages namespaces.
pub fn host(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh")
}

pub struct Netns {
    pub name: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let out = host(&format!("ip netns add {name}"));
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns {
            name: name.to_string(),
            children: Mutex::new(Vec::new()),
        };
        ns.ok("ip link set lo up");
        ns
    }

    /// Runs `cmd` with sh inside the namespace.
    pub fn run(&self, cmd: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("spawn ip netns exec")
    }

    /// Runs `cmd` and panics with its output unless it succeeds; returns stdout.
    pub fn ok(&self, cmd: &str) -> String {
        let out = self.run(cmd);
        assert!(
            out.status.success(),
            "[{}] `{}` failed ({}):\nstdout: {}\nstderr: {}",
            self.name,
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running process in the namespace. It is killed by PID on drop.
    /// `sh -c "exec ..."` keeps the PID of the real program.
    pub fn spawn(&self, cmd: &str) -> u32 {
        self.spawn_with(cmd, Stdio::null(), Stdio::null())
    }

    pub fn spawn_logged(&self, cmd: &str, log: &std::path::Path) -> u32 {
        let f = fs::File::create(log).expect("create log");
        let f2 = f.try_clone().unwrap();
        self.spawn_with(cmd, Stdio::from(f), Stdio::from(f2))
    }

    fn spawn_with(&self, cmd: &str, out: Stdio, err: Stdio) -> u32 {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "sh",
                "-c",
                &format!("exec {cmd}"),
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn in netns");
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }

    /// Sends `sig` to one process this namespace started.
    pub fn signal(&self, pid: u32, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }

    /// Kills one process this namespace started and reaps it.
    pub fn kill(&self, pid: u32) {
        let mut kids = self.children.lock().unwrap();
        if let Some(i) = kids.iter().position(|c| c.id() == pid) {
            let mut c = kids.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for a started process to exit by itself; returns its exit code.
    pub fn wait(&self, pid: u32, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut kids = self.children.lock().unwrap();
                if let Some(i) = kids.iter().position(|c| c.id() == pid) {
                    if let Ok(Some(st)) = kids[i].try_wait() {
                        // Already reaped by try_wait; wait() just returns the same status.
                        let _ = kids.remove(i).wait();
                        return st.code();
                    }
                } else {
                    return None;
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The per-namespace /etc override that `ip netns exec` bind-mounts (e.g. `hosts`).
    pub fn write_etc(&self, file: &str, content: &str) {
        let dir = PathBuf::from("/etc/netns").join(&self.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file), content).unwrap();
    }

    pub fn disable_ipv6(&self) {
        self.ok("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for mut c in self.children.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = host(&format!("ip netns del {}", self.name));
        let _ = fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
