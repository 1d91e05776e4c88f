//! Build helpers for the packages: man pages and shell completions generated from the
//! clap definitions, so they can never drift from the binaries' real options.
//!
//!     cargo run -p xtask -- assets OUT_DIR
//!
//! writes OUT_DIR/man/*.1 (one page per command and subcommand) and
//! OUT_DIR/completions/{bash,zsh,fish}/. packaging/build-{deb,rpm}.sh call it.

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, out] if cmd == "assets" => match assets(Path::new(out)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: xtask assets OUT_DIR   (man pages and shell completions)");
            ExitCode::from(2)
        }
    }
}

/// The CLIs to document, with the extra man sections only a human can write.
fn commands() -> Vec<(Command, &'static str)> {
    let mut v = vec![(lvs_node::cli::Cli::command(), LVS_NODE_EXTRA)];
    if let Some(cmd) = lvs_cert_command() {
        v.push((cmd, LVS_CERT_EXTRA));
    }
    v
}

fn lvs_cert_command() -> Option<Command> {
    Some(lvs_cert::cli::Cli::command())
}

fn assets(out: &Path) -> std::io::Result<()> {
    let man = out.join("man");
    fs::create_dir_all(&man)?;
    for (cmd, extra) in commands() {
        let name = cmd.get_name().to_string();
        write_man_pages(cmd.clone(), &man, extra)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            // File names are what each shell's loader looks for on demand.
            let (dir, file) = match shell {
                Shell::Bash => ("bash", name.clone()),
                Shell::Zsh => ("zsh", format!("_{name}")),
                _ => ("fish", format!("{name}.fish")),
            };
            let dir = out.join("completions").join(dir);
            fs::create_dir_all(&dir)?;
            let mut f = fs::File::create(dir.join(file))?;
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut f);
            f.flush()?;
        }
    }
    Ok(())
}

/// One page per command and visible subcommand (`lvs-node-run.1`, ...), the way git and
/// cargo do it; the top page gets FILES and SEE ALSO.
fn write_man_pages(cmd: Command, dir: &Path, extra: &str) -> std::io::Result<()> {
    let version = cmd.get_version().unwrap_or(env!("CARGO_PKG_VERSION"));
    let source = format!("{} {version}", cmd.get_name());
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let date = man_date();
    let mut pages = vec![(cmd.clone(), true)];
    pages.extend(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| (s.clone(), false)),
    );
    for (c, top) in pages {
        let man = clap_mangen::Man::new(c)
            .section("1")
            .date(date.clone())
            .source(source.clone())
            .manual("System Administration");
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        if top {
            buf.extend_from_slice(extra.as_bytes());
        }
        fs::write(dir.join(man.get_filename()), buf)?;
    }
    Ok(())
}

/// The page date: SOURCE_DATE_EPOCH when set (the build scripts pass the last commit's
/// time, so rebuilding a commit gives byte-identical pages), else today. Never empty: an
/// empty .TH field shifts the source and manual fields in man(1)'s header and footer.
fn man_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

const LVS_NODE_EXTRA: &str = r#".SH FILES
.TP
/etc/lvs\-node/node.toml
The node config (VIPs, ARP method, checks, reporting).
.TP
/var/lib/lvs\-node/
Applied state: what \fBlvs\-node down\fR removes.
.TP
/run/lvs\-node/control.sock
Control socket of \fBlvs\-node run\fR (drain, resume).
.TP
/usr/lib/systemd/system/lvs\-node.service
The hardened unit; customise it with \fBsystemctl edit lvs\-node\fR.
.SH EXIT STATUS
0 success; 1 failure while applying (rolled back); 2 bad config or usage (nothing changed);
3 \fBstatus\fR: the host drifts from the config.
.SH SEE ALSO
\fBlvs\-cert\fR(1), \fBsystemd.exec\fR(5), \fBkeepalived.conf\fR(5), \fBhaproxy\fR(1)
"#;

const LVS_CERT_EXTRA: &str = r#".SH FILES
.TP
/var/lib/lvs\-cert/
ACME account and the renewal record.
.TP
/usr/lib/systemd/system/lvs\-cert\-renew.timer
Runs \fBlvs\-cert renew\fR twice a day.
.SH SEE ALSO
\fBlvs\-node\fR(1)
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(super::civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(super::civil_from_days(-1), (1969, 12, 31));
    }
}
