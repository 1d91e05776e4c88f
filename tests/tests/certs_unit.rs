//! `lvs-cert renew` under the real `lvs-cert-renew.service`, in a qemu guest booted with
//! systemd on the host's userland (tests/src/vm.rs): the unit file from systemd/ as the
//! package installs it, plus the drop-in docs/certs.md tells admins to write
//! (ReadWritePaths= for the NFS paths, here local stand-ins) and an ExecStartPre= that
//! records whether the unit can read the key, as a control.
//!
//! The node is XRootD's: the installed key belongs to `xrootd:xrootd` with mode 0400, and
//! the unit (root with CAP_CHOWN only) cannot read it. The same certificate is published in
//! the shared directory, so the renewal has nothing to do: two runs of the unit must leave
//! the pair alone, without the deploy hook. No CA is involved (nothing is due; the ACME
//! directory URL is a closed port on the guest's loopback).

use lab::vm::{Vm, VmOpts};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// From qemu's start to /lab/done (a systemd boot under TCG takes about a minute).
const BOOT_BOUND: Duration = Duration::from_secs(360);
const VIP: &str = "ftp.lab.example";
const NODE: &str = "n1.lab.example";
/// Where the guest's pair lives (under the unit's ReadWritePaths=/etc/grid-security).
const GS: &str = "etc/grid-security/lvslab";

fn write(root: &Path, rel: &str, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&p);
    symlink(target, &p).unwrap();
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "`{cmd}`: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const REPORT_UNIT: &str = "[Unit]
Description=lab: run lvs-cert-renew.service twice and report to the host
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lab-report
[Install]
WantedBy=multi-user.target
";

const REPORT: &str = r#"#!/bin/sh
{
  for run in 1 2; do
    systemctl start lvs-cert-renew.service
    echo "run $run rc=$? Result=$(systemctl show -p Result --value lvs-cert-renew.service) ExecMainStatus=$(systemctl show -p ExecMainStatus --value lvs-cert-renew.service)"
  done
  echo "== hook"
  cat /var/lib/lvs-cert/lab-hook.log 2>/dev/null
  echo "== key"
  stat -L -c 'owner=%U:%G mode=%a' /etc/grid-security/lvslab/hostkey.pem
  sha256sum /etc/grid-security/lvslab/hostkey.pem
  echo "== journal"
  journalctl -b -o cat --no-pager -u lvs-cert-renew.service
  echo "== end"
} >/lab/report.txt 2>&1
touch /lab/done
"#;

/// The overlay's upper directory: the unit where the package puts it, the binary, the
/// admin's drop-in and renew.toml, the installed pair (xrootd's key), the shared directory
/// with the same pair published, and masks for what the host has enabled.
fn upper(dir: &Path, work: &Path) {
    let unit =
        std::fs::read_to_string(lab::units::repo().join("systemd/lvs-cert-renew.service")).unwrap();
    write(
        dir,
        "usr/lib/systemd/system/lvs-cert-renew.service",
        &unit,
        0o644,
    );
    link(
        dir,
        "usr/bin/lvs-cert",
        lab::bins::lvs_cert().to_str().expect("utf-8 path"),
    );
    // What docs/certs.md has the admin add (the NFS paths), and the control: can the unit
    // read the key? Its output goes to the unit's journal.
    write(
        dir,
        "etc/systemd/system/lvs-cert-renew.service.d/lab.conf",
        &format!(
            "[Service]\nReadWritePaths=/srv/lab\n\
             ExecStartPre=-/bin/sh -c 'if head -c 1 /{GS}/hostkey.pem >/dev/null 2>&1; \
             then echo LAB-KEY-READABLE; else echo LAB-KEY-UNREADABLE; fi'\n"
        ),
        0o644,
    );
    // A test CA and a pair it signed, published the way `lvs-cert acme` publishes.
    let w = work.display();
    sh(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout {w}/ca.key -out {w}/ca.pem -days 30 \
         -subj '/CN=lab test ca' -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null && \
         printf 'subjectAltName=DNS:{VIP},DNS:{NODE}\\nextendedKeyUsage=serverAuth,clientAuth\\nbasicConstraints=CA:FALSE\\n' >{w}/ext && \
         openssl req -newkey rsa:2048 -nodes -keyout {w}/privkey.pem -out {w}/r.csr -subj '/CN={VIP}' 2>/dev/null && \
         openssl x509 -req -in {w}/r.csr -CA {w}/ca.pem -CAkey {w}/ca.key -CAcreateserial \
         -out {w}/fullchain.pem -days 30 -extfile {w}/ext 2>/dev/null"
    ));
    let ca = std::fs::read_to_string(work.join("ca.pem")).unwrap();
    write(dir, "etc/lvs-cert/lab-ca.pem", &ca, 0o644);
    let published = format!("srv/lab/shared/certs/{VIP}/1-lab");
    for (f, mode) in [("fullchain.pem", 0o644), ("privkey.pem", 0o600)] {
        let text = std::fs::read_to_string(work.join(f)).unwrap();
        write(dir, &format!("{published}/{f}"), &text, mode);
    }
    std::fs::create_dir_all(dir.join("srv/lab/webroot")).unwrap();
    // Installed by lvs-cert itself (links into a generation, relative: valid in the guest),
    // then the key handed to xrootd as XRootD's layout has it.
    let o = Command::new(lab::bins::lvs_cert())
        .arg("install")
        .arg("--from")
        .arg(dir.join("srv/lab/shared"))
        .args(["--name", VIP, "--alt", NODE, "--issuer-ca"])
        .arg(work.join("ca.pem"))
        .arg("--cert")
        .arg(dir.join(GS).join("hostcert.pem"))
        .arg("--key")
        .arg(dir.join(GS).join("hostkey.pem"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let xrootd = nix::unistd::User::from_name("xrootd")
        .unwrap()
        .expect("user xrootd (the xrootd package creates it; tests/setup.sh installs it)");
    std::os::unix::fs::chown(
        dir.join(GS).join("hostkey.pem"),
        Some(xrootd.uid.as_raw()),
        Some(xrootd.gid.as_raw()),
    )
    .unwrap();
    write(
        dir,
        "etc/lvs-cert/renew.toml",
        &format!(
            "vip = \"{VIP}\"\nalt = [\"{NODE}\"]\nwebroot = \"/srv/lab/webroot\"\n\
             shared_dir = \"/srv/lab/shared\"\ndirectory = \"https://127.0.0.1:9/dir\"\n\
             vip_ip = \"192.0.2.100\"\nnode_ip = [\"{NODE}=192.0.2.11\"]\n\
             http_timeout = \"2s\"\nissuer_ca = \"/etc/lvs-cert/lab-ca.pem\"\n\
             cert = \"/{GS}/hostcert.pem\"\nkey = \"/{GS}/hostkey.pem\"\n\
             deploy_hook = \"date +%s >>/var/lib/lvs-cert/lab-hook.log\"\n"
        ),
        0o600,
    );
    write(dir, "usr/local/sbin/lab-report", REPORT, 0o755);
    write(
        dir,
        "etc/systemd/system/lab-report.service",
        REPORT_UNIT,
        0o644,
    );
    link(
        dir,
        "etc/systemd/system/multi-user.target.wants/lab-report.service",
        "/etc/systemd/system/lab-report.service",
    );
    let mut masks: Vec<String> = [
        "networking.service",
        "NetworkManager.service",
        "systemd-networkd.service",
        "systemd-timesyncd.service",
        "firewalld.service",
        "keepalived.service",
        "ipvsadm.service",
        "lvs-cert-renew.timer",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for wants in ["multi-user.target.wants", "timers.target.wants"] {
        if let Ok(rd) = std::fs::read_dir(Path::new("/etc/systemd/system").join(wants)) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".service") || n.ends_with(".timer") {
                    masks.push(n);
                }
            }
        }
    }
    for m in masks {
        link(dir, &format!("etc/systemd/system/{m}"), "/dev/null");
    }
}

/// Issue 16, item 9, under the real unit: an installed key owned by xrootd (0400) that the
/// unit cannot read is left alone by `renew`, run after run: no reinstall, no deploy hook.
#[test]
fn the_renew_unit_leaves_an_xrootd_owned_key_alone_run_after_run() {
    lab::require_root();
    let dir = Scratch(std::env::temp_dir().join(format!(
        "{}-certunit",
        lab::netns::unique_prefix("certunit")
    )));
    let up = dir.0.join("upper");
    let work = dir.0.join("work");
    std::fs::create_dir_all(&work).unwrap();
    upper(&up, &work);
    let key_sum = sh(&format!(
        "sha256sum < {}",
        up.join(GS).join("hostkey.pem").display()
    ));
    let mut opts = VmOpts::new("certunit");
    opts.memory_mb = 512;
    opts.upper = Some(up.clone());
    let mut vm = Vm::boot_systemd(&opts).unwrap_or_else(|e| panic!("booting the guest: {e:#}"));
    if let Err(e) = vm.wait_file("done", BOOT_BOUND) {
        panic!(
            "the guest did not finish its report: {e:#}\nconsole:\n{}",
            vm.console_tail(40)
        );
    }
    let report = std::fs::read_to_string(vm.io_dir().join("report.txt")).unwrap();
    drop(vm);
    // The lines between `== name` and the next `== ` line.
    let section = |name: &str| -> String {
        report
            .lines()
            .skip_while(|l| *l != format!("== {name}"))
            .skip(1)
            .take_while(|l| !l.starts_with("== "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The control: under the unit, root could not read the key.
    let journal = section("journal");
    assert!(
        journal.contains("LAB-KEY-UNREADABLE") && !journal.contains("LAB-KEY-READABLE"),
        "the unit could read the xrootd key, so this test would not test anything:\n{report}"
    );
    for run in 1..=2 {
        assert!(
            report.contains(&format!("run {run} rc=0 Result=success ExecMainStatus=0")),
            "run {run} of lvs-cert-renew.service failed:\n{report}"
        );
    }
    assert_eq!(
        journal.matches("nothing to do").count(),
        2,
        "each run should find nothing to do:\n{report}"
    );
    assert!(
        !journal.contains("installed "),
        "the unit reinstalled the pair:\n{report}"
    );
    assert!(
        section("hook").trim().is_empty(),
        "the deploy hook ran:\n{report}"
    );
    let key = section("key");
    assert!(
        key.contains("owner=xrootd:xrootd mode=400")
            && key.contains(key_sum.split_whitespace().next().unwrap()),
        "the key changed:\n{report}"
    );
}
