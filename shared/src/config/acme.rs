//! `[acme]`: the agent's HTTP-01 responder for a shared webroot.
//! (Placeholder shape; extended by the certificate work.)

use crate::error::ConfigError;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {}

#[derive(Debug, Clone)]
pub struct Settings {}

pub fn validate(_file: &Path, _raw: RawAcme) -> Result<Settings, ConfigError> {
    Ok(Settings {})
}
