//! The node's states as they travel on the wire: the admin state (persisted and served),
//! the node state, one check's debounced state, VIP facts and load. `/status` carries them,
//! and every reader of a peer's `/status` parses them, so they live below every plane.
//!
//! The debounce rule ([`CheckStatus::apply`]) stays with the type: the streak it counts is
//! private to it.

use crate::util::time::now_ms;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Staleness bound of a check until one is set (the data plane check's).
pub const DEFAULT_STALE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Admin {
    #[default]
    Ready,
    Drain,
    Maint,
}

impl Admin {
    pub fn as_str(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }
    /// Metric value: 0 ready, 1 drain, 2 maint.
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// The admin state as persisted in `state_dir/admin.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AdminState {
    pub admin: Admin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds of the last change.
    #[serde(default)]
    pub since: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Up,
    Down,
    Drain,
    Maint,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Down => "down",
            NodeState::Drain => "drain",
            NodeState::Maint => "maint",
        }
    }
}

/// One check's debounced state and its last raw result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckStatus {
    pub name: String,
    pub kind: String,
    /// Debounced state; None until the first result arrives.
    pub up: Option<bool>,
    pub last_ok: Option<bool>,
    /// Last result's detail: the failure reason, or what was seen.
    pub detail: String,
    pub latency_ms: f64,
    /// Unix milliseconds of the last result.
    pub checked_at_ms: u64,
    pub rise: u32,
    pub fall: u32,
    /// A result older than this counts as down (milliseconds).
    pub stale_after_ms: u64,
    /// The check depends on something every node shares (`[[check]] shared`).
    #[serde(default)]
    pub shared: bool,
    #[serde(skip)]
    streak: u32,
}

impl CheckStatus {
    pub fn new(name: &str, kind: &str, rise: u32, fall: u32) -> Self {
        CheckStatus {
            name: name.into(),
            kind: kind.into(),
            up: None,
            last_ok: None,
            detail: "pending".into(),
            latency_ms: 0.0,
            checked_at_ms: 0,
            rise,
            fall,
            stale_after_ms: DEFAULT_STALE.as_millis() as u64,
            shared: false,
            streak: 0,
        }
    }

    /// Why a result that says up is not trusted any more, at `now` (Unix ms).
    pub fn stale(&self, now: u64) -> Option<String> {
        let age = now.saturating_sub(self.checked_at_ms);
        (self.up == Some(true) && age > self.stale_after_ms)
            .then(|| format!("no result for {:.1}s (check stalled)", age as f64 / 1000.0))
    }

    /// Applies one raw result. The first result sets the state at once (so a fresh agent
    /// reports without waiting `rise` intervals); later flips need `rise`/`fall` in a row.
    pub fn apply(&mut self, ok: bool, detail: String, latency: Duration) {
        self.detail = detail;
        self.latency_ms = latency.as_secs_f64() * 1000.0;
        self.checked_at_ms = now_ms();
        if self.last_ok == Some(ok) {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak = 1;
        }
        self.last_ok = Some(ok);
        match self.up {
            None => self.up = Some(ok),
            Some(cur) if cur != ok => {
                let need = if ok { self.rise } else { self.fall };
                if self.streak >= need {
                    self.up = Some(ok);
                }
            }
            _ => {}
        }
    }
}

/// Per-VIP data plane facts, for /status and metrics.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct VipView {
    pub address: String,
    pub present: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Load {
    pub sessions: u64,
    pub load1: f64,
    pub cores: u32,
}
