//! `lvs-node run` settings: `[daemon]`, `[[check]]`, `[report]`, `[weight]`.
//! (Placeholder shape; extended by the daemon work.)

use super::Vip;
use crate::error::ConfigError;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawReport {}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWeight {}

pub struct RawSections {
    pub daemon: RawDaemon,
    pub checks: Vec<RawCheck>,
    pub report: RawReport,
    pub weight: RawWeight,
}

#[derive(Debug, Clone, Default)]
pub struct Settings {}

pub fn validate(_file: &Path, _raw: RawSections, _vips: &[Vip]) -> Result<Settings, ConfigError> {
    Ok(Settings {})
}
