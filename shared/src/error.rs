//! Config errors always say where (file, key or line) and how to fix it: an admin reading
//! the message at 3 a.m. should not need the docs.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key such as `vip[1].device`, or `line 7` when only the position is known.
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    pub fn new(
        file: impl Into<PathBuf>,
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}\n  fix: {}",
            self.file.display(),
            self.key,
            self.problem,
            self.fix
        )
    }
}

impl std::error::Error for ConfigError {}
