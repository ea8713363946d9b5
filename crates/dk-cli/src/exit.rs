//! Exit codes shared by every command (DESIGN §7).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // some codes belong to commands that arrive later (plan, apply, drift, test)
pub enum Exit {
    /// Success / no changes.
    Ok = 0,
    /// An error.
    Error = 1,
    /// Changes present (`--detailed-exitcode`).
    Changes = 2,
    /// Validation failed.
    Invalid = 3,
    /// A policy or approval gate failed.
    Gate = 4,
    /// State is locked.
    Locked = 5,
    /// Drift detected.
    Drift = 6,
    /// Tests failed.
    TestsFailed = 8,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}
