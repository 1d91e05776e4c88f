//! `lvs-node firewalld-service gridftp|report`: the firewalld service XML for this node.

use crate::cli::FirewalldServiceArgs;
use crate::site::firewalld::{
    bfd_port, control_ports, data_range, gridftp_xml, report_ports, report_xml, DEFAULT_DATA_RANGE,
};
use crate::site::gridftp_conf::Paths;
use crate::site::gridftp_conf::{parse_range, GridftpSettings};
use crate::util::exit::{EXIT_OK, EXIT_USAGE};
use lvs_shared::config::NodeConfig;
use std::path::Path;

/// `lvs-node firewalld-service gridftp|report`: prints the XML for this node.
pub fn run(config: &Path, a: FirewalldServiceArgs) -> u8 {
    let cfg = match NodeConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let xml = if a.service == "gridftp" {
        let range = match &a.port_range {
            Some(s) => match parse_range(&s.replace('-', ",")) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: --port-range {e}; write it as LOW-HIGH, e.g. 50000-51000");
                    return EXIT_USAGE;
                }
            },
            None => {
                let paths = Paths::new(&a.gridftp_conf, a.sysconfig.as_deref(), None);
                let gf = GridftpSettings::load(&paths.gridftp_conf, paths.sysconfig.as_deref());
                match data_range(&gf) {
                    Some(r) => r,
                    None => {
                        eprintln!(
                            "note: no GridFTP data port range found (read {}): using {}-{}; \
                             set GLOBUS_TCP_PORT_RANGE or pass --port-range",
                            gf.files_text(),
                            DEFAULT_DATA_RANGE.0,
                            DEFAULT_DATA_RANGE.1
                        );
                        DEFAULT_DATA_RANGE
                    }
                }
            }
        };
        gridftp_xml(&control_ports(&cfg), range)
    } else {
        let ports = report_ports(&cfg);
        let bfd = bfd_port(&cfg);
        if ports.is_empty() && bfd.is_none() {
            eprintln!(
                "error: {}: no [report] http or agent_check and no [bfd]: nothing to open; \
                 set [report] http (docs/daemon.md) or leave the report service out",
                cfg.file.display()
            );
            return EXIT_USAGE;
        }
        report_xml(&ports, bfd)
    };
    print!("{xml}");
    EXIT_OK
}
