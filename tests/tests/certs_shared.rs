//! The shared directory as another node's root sees it: it writes there too (NFS), so it
//! can plant symlinks, FIFOs, huge sparse files and directories under the names lvs-cert
//! uses. Each test mounts one such attack, from the shared directory, against the real
//! `lvs-cert` binary running as root in its own network namespace (the ACME directory URL
//! points at a closed port on the namespace's loopback: these attacks come before any CA
//! is asked anything). The EAB file's owner check is here too: it is the same question,
//! a file someone else could have written.

use lab::pebble::TempDir;
use lab::Netns;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Scene {
    ns: Netns,
    d: TempDir,
}

impl Scene {
    fn new(tag: &str) -> Scene {
        lab::require_root();
        let d = TempDir::new(tag);
        for sub in ["shared", "webroot"] {
            std::fs::create_dir_all(d.path().join(sub)).unwrap();
        }
        Scene {
            ns: Netns::new(&lab::netns::unique_prefix(tag)),
            d,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.d.path().join(rel)
    }

    /// `lvs-cert acme` for one VIP and one node, against a CA that does not answer.
    fn acme(&self, extra: &str) -> String {
        format!(
            "{bin} acme --vip ftp.example.org --alt n1.example.org --webroot {wr} \
             --shared-dir {sh} --state-dir {st} --directory https://127.0.0.1:9/dir \
             --cert {c} --key {k} --vip-ip 192.0.2.100 --node-ip n1.example.org=192.0.2.11 \
             --http-timeout 2s {extra}",
            bin = lab::bins::lvs_cert().display(),
            wr = self.p("webroot").display(),
            sh = self.p("shared").display(),
            st = self.p("state").display(),
            c = self.p("n1/hostcert.pem").display(),
            k = self.p("n1/hostkey.pem").display(),
        )
    }

    /// Starts `cmd` in the namespace; returns its PID and log path.
    fn spawn(&self, cmd: &str, name: &str) -> (u32, PathBuf) {
        let log = self.p(&format!("{name}.log"));
        (self.ns.spawn_logged(cmd, &log), log)
    }

    /// Waits for a started process; on timeout it is killed (by PID) and None returned.
    fn finish(&self, pid: u32, timeout: Duration) -> Option<i32> {
        let code = self.ns.wait(pid, timeout);
        if code.is_none() {
            self.ns.kill(pid);
        }
        code
    }
}

fn log(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A lock another node holds right now (fresh mtime; --lock-stale 1h keeps it alive).
fn plant_live_lock(shared: &Path) {
    let rec = r#"{"host":"n2.example.org","pid":4242,"token":"x","created":0,"updated":0}"#;
    std::fs::write(shared.join("lvs-cert.lock"), format!("{rec:<255}\n")).unwrap();
}

/// The attack of issue 16: the waiter's clock probe is seen once, and a symlink to a
/// victim file is planted under that name before the next iteration of the lock wait.
/// Root must never write through it, and every probe must have a name of its own.
#[test]
fn a_symlink_planted_under_the_clock_probe_name_is_never_written_through() {
    let s = Scene::new("clk");
    let shared = s.p("shared");
    let victim = s.p("victim");
    std::fs::write(&victim, "precious").unwrap();
    plant_live_lock(&shared);
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
    ino.add_watch(&shared, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_DELETE)
        .unwrap();
    let (pid, log_p) = s.spawn(&s.acme("--lock-wait 4s --lock-stale 1h"), "waiter");

    let mut created: Vec<String> = Vec::new();
    let mut planted: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let events = match ino.read_events() {
            Ok(ev) => ev,
            Err(nix::errno::Errno::EAGAIN) => {
                std::thread::sleep(Duration::from_millis(1));
                if planted.is_some() && created.len() >= 8 {
                    break;
                }
                continue;
            }
            Err(e) => panic!("inotify: {e}"),
        };
        for ev in events {
            let Some(name) = ev.name.map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if !name.starts_with(".lvs-cert-clock-") {
                continue;
            }
            if ev.mask.contains(AddWatchFlags::IN_CREATE) {
                if planted.as_deref() != Some(name.as_str()) {
                    created.push(name);
                }
            } else if ev.mask.contains(AddWatchFlags::IN_DELETE) && planted.is_none() {
                // The first probe is gone: its name now points at the victim.
                std::os::unix::fs::symlink(&victim, shared.join(&name)).unwrap();
                planted = Some(name);
            }
        }
    }
    let code = s.finish(pid, Duration::from_secs(10));
    let out = log(&log_p);
    let planted = planted.unwrap_or_else(|| panic!("never saw a clock probe: {out}"));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious",
        "root wrote through the planted symlink {planted}: {out}"
    );
    assert!(
        std::fs::symlink_metadata(shared.join(&planted)).is_ok(),
        "the planted name was reused (and its symlink removed): {out}"
    );
    let mut uniq = created.clone();
    uniq.sort();
    uniq.dedup();
    assert!(
        created.len() >= 5 && uniq.len() == created.len(),
        "the waiter reused probe names: {created:?}"
    );
    // It gave up waiting for the live lock, as it should.
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("gave up waiting"), "{out}");
}

/// A FIFO at the lock path (what a hung file or a hostile writer looks like): the waiter
/// must not block opening it, and the error names the path.
#[test]
fn a_fifo_at_the_lock_path_fails_fast_naming_it() {
    let s = Scene::new("lfifo");
    let lock = s.p("shared/lvs-cert.lock");
    nix::unistd::mkfifo(&lock, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let t = Instant::now();
    let (pid, log_p) = s.spawn(&s.acme("--lock-wait 60s --lock-stale 1h"), "fifo");
    let code = s.finish(pid, Duration::from_secs(15));
    let out = log(&log_p);
    assert!(
        code.is_some(),
        "lvs-cert hung on the FIFO at {} (killed after 15 s): {out}",
        lock.display()
    );
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains(&lock.display().to_string()) && out.contains("a FIFO"),
        "{out}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!s.p("n1").exists(), "installed something: {out}");
}

/// `renew` takes the pool's names from `SHARED/renewal.json`: a FIFO there must not hang
/// it, and a huge sparse file must be refused by its size, not read (or allocated).
#[test]
fn a_fifo_or_a_huge_sparse_file_as_the_shared_record_is_refused_naming_it() {
    let s = Scene::new("recfifo");
    let record = s.p("shared/renewal.json");
    let cfg = s.p("renew.toml");
    std::fs::write(
        &cfg,
        format!(
            "webroot = \"{}\"\nshared_dir = \"{}\"\ndirectory = \"https://127.0.0.1:9/dir\"\n",
            s.p("webroot").display(),
            s.p("shared").display()
        ),
    )
    .unwrap();
    let renew = format!(
        "{} renew --state-dir {} --config {}",
        lab::bins::lvs_cert().display(),
        s.p("state").display(),
        cfg.display()
    );

    nix::unistd::mkfifo(&record, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let (pid, log_p) = s.spawn(&renew, "fifo");
    let code = s.finish(pid, Duration::from_secs(15));
    let out = log(&log_p);
    assert!(
        code.is_some(),
        "renew hung on the FIFO (killed after 15 s): {out}"
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&record.display().to_string()) && out.contains("a FIFO"),
        "{out}"
    );

    // 1 TiB of holes: more than this machine could allocate, nothing to read from disk.
    std::fs::remove_file(&record).unwrap();
    let f = std::fs::File::create(&record).unwrap();
    f.set_len(1 << 40).unwrap();
    drop(f);
    let t = Instant::now();
    let (pid, log_p) = s.spawn(&renew, "sparse");
    let code = s.finish(pid, Duration::from_secs(15));
    let out = log(&log_p);
    assert_eq!(code, Some(2), "{out}");
    // Refused by its size: nothing read (reading 1 TiB of holes would take many minutes).
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{:?}: {out}",
        t.elapsed()
    );
    assert!(
        out.contains(&record.display().to_string()) && out.contains("larger than 65536 bytes"),
        "{out}"
    );
    assert!(!s.p("state").exists(), "{out}");
}

/// The EAB key file must belong to the user running lvs-cert (root here): a 0600 file
/// another user owns is refused with the fix, before anything is written.
#[test]
fn an_eab_file_owned_by_another_user_is_refused_with_the_fix() {
    let s = Scene::new("eabown");
    let f = s.p("eab.toml");
    std::fs::write(
        &f,
        "kid = \"kid-1\"\nhmac_key = \"zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    std::os::unix::fs::chown(&f, Some(nobody.uid.as_raw()), None).unwrap();
    let o = s.ns.run(&s.acme(&format!("--eab-file {}", f.display())));
    let out = format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("--eab-file {}", f.display()))
            && out.contains("belongs to nobody")
            && out.contains(&format!("chown root {p} && chmod 600 {p}", p = f.display())),
        "{out}"
    );
    assert!(!s.p("state").exists(), "{out}");
    // Owned by root, 0600: accepted (the run then fails at the absent CA, not at the file).
    std::os::unix::fs::chown(&f, Some(0), None).unwrap();
    let o = s.ns.run(&s.acme(&format!("--eab-file {}", f.display())));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("belongs to"), "{err}");
}
