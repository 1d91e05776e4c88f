//! `/metrics`: one prometheus-client registry per audience, into which each component
//! registers its own metrics when the daemon starts (health's snapshot collector, BFD, the
//! redirector). The public part carries states, numbers and configured names only; the
//! directors' part (addresses in `report.allow`) adds what names other hosts: BFD director
//! addresses and redirect targets.

use crate::util::gate::Role;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::registry::Registry;

/// What [`Metrics::render`] writes: the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this.
pub const PREFIX: &str = "lvs_realserver";

pub struct Metrics {
    public: Registry,
    directors: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            public: Registry::with_prefix(PREFIX),
            directors: Registry::with_prefix(PREFIX),
        }
    }
}

impl Metrics {
    /// Where a component registers what anyone who may scrape `/metrics` may see.
    pub fn public(&mut self) -> &mut Registry {
        &mut self.public
    }

    /// Where a component registers what only the directors (`report.allow`) may see.
    pub fn directors(&mut self) -> &mut Registry {
        &mut self.directors
    }

    /// One scrape, for a client of `role`.
    pub fn render(&self, role: Role) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.public);
        if role == Role::Director {
            let _ = encode_registry(&mut out, &self.directors);
        }
        let _ = encode_eof(&mut out);
        out
    }
}
