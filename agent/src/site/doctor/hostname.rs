//! `hostname.loopback`: the name GridFTP uses for itself (`hostname` in its config, else the
//! system hostname) must resolve to a real address. Debian's installer maps the hostname to
//! 127.0.1.1 in /etc/hosts; GridFTP then advertises a loopback address or refuses to start.

use super::Finding;
use crate::site::gridftp_conf::{resolve, GridftpSettings};

pub const ID: &str = "hostname.loopback";

pub fn finding(gf: &GridftpSettings) -> Finding {
    let (name, source) = match gf.hostname() {
        Some(s) => (s.value.clone(), format!("hostname at {}", s.source)),
        None => match nix::unistd::gethostname() {
            Ok(h) => (
                h.to_string_lossy().into_owned(),
                "the system hostname".into(),
            ),
            Err(e) => {
                return Finding::error(
                    ID,
                    "cannot read the system hostname",
                    e.to_string(),
                    "set it with `hostnamectl set-hostname FQDN`",
                )
            }
        },
    };
    let fix = format!(
        "map `{name}` to this node's real IP: put `REAL_IP {name}` in /etc/hosts (and remove it \
         from the 127.0.0.1/127.0.1.1 lines) or fix DNS"
    );
    match resolve(&name) {
        Err(e) => Finding::error(
            ID,
            format!("`{name}` ({source}) does not resolve"),
            format!(
                "{e}\nglobus-gridftp-server needs its own name to resolve: otherwise it refuses to \
                 start or advertises 127.0.0.1."
            ),
            fix,
        ),
        Ok(addrs) => {
            let list = addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if addrs.iter().any(|a| a.is_loopback()) {
                Finding::error(
                    ID,
                    format!("`{name}` ({source}) resolves to a loopback address ({list})"),
                    "GridFTP uses this address for itself: it then advertises 127.0.0.1 to \
                     clients (and to directors' checks), so data connections go to the client's \
                     own host and fail.",
                    fix,
                )
            } else {
                Finding::ok(ID, format!("`{name}` resolves to {list}"), source)
            }
        }
    }
}
