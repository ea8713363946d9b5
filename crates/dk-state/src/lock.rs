//! Lock holder information shared by the backends.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who holds (or held) the lock of one environment's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Lock ID (UUID v4), the argument of `dk state unlock ID`.
    pub id: String,
    /// The command holding it, e.g. `apply`, `plan`, `state mv`.
    pub operation: String,
    /// User name of the holder.
    pub who: String,
    /// Host name of the holder.
    pub host: String,
    /// Process ID of the holder on `host`.
    pub pid: u32,
    /// When the lock was taken.
    pub created: DateTime<Utc>,
    /// End of the lease (PostgreSQL: renewed by a heartbeat while the holder lives); `None` for
    /// local locks, which die with their process.
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
    /// Project name.
    #[serde(default)]
    pub project: String,
    /// Environment name.
    #[serde(default)]
    pub environment: String,
}

impl LockInfo {
    /// Holder info for the current process.
    pub(crate) fn for_current_process(project: &str, environment: &str, operation: &str) -> Self {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.to_string(),
            who: current_user(),
            host: current_host(),
            pid: std::process::id(),
            created: Utc::now(),
            expires: None,
            project: project.to_string(),
            environment: environment.to_string(),
        }
    }

    /// Placeholder for a held lock whose holder did not (yet) record itself.
    pub(crate) fn unknown(project: &str, environment: &str) -> Self {
        LockInfo {
            id: "unknown".to_string(),
            operation: "unknown operation".to_string(),
            who: "unknown".to_string(),
            host: "unknown".to_string(),
            pid: 0,
            created: Utc::now(),
            expires: None,
            project: project.to_string(),
            environment: environment.to_string(),
        }
    }

    /// `dk apply` for operation `apply`; other operations verbatim.
    pub fn operation_label(&self) -> String {
        if self.operation.starts_with("dk ") || self.operation.is_empty() {
            self.operation.clone()
        } else {
            format!("dk {}", self.operation)
        }
    }

    /// True when the holder claims to run on this host and its process no longer exists.
    pub fn holder_is_dead_local_process(&self) -> bool {
        self.host == current_host() && !pid_alive(self.pid)
    }
}

/// The user running this process (`$USER`, `$LOGNAME`, or `unknown`).
pub fn current_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// This machine's host name (read once per process).
pub fn current_host() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(read_host).clone()
}

fn read_host() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(path) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    std::env::var("HOSTNAME")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether process `pid` exists on this host (zombies count as gone). Where `/proc` is not
/// available the answer is "alive", the safe side.
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 (after the parenthesised command name) is the state; Z = zombie, X = dead.
        Ok(stat) => !matches!(
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_bogus_pid_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX - 1));
    }

    #[test]
    fn holder_info_of_current_process() {
        let info = LockInfo::for_current_process("shop", "dev", "apply");
        assert_eq!(info.pid, std::process::id());
        assert_eq!(info.host, current_host());
        assert!(!info.who.is_empty());
        assert_eq!(info.operation_label(), "dk apply");
        assert!(!info.holder_is_dead_local_process());
        assert_eq!(info.id.len(), 36);
    }

    #[test]
    fn locked_error_names_the_holder() {
        let mut info = LockInfo::for_current_process("shop", "dev", "apply");
        info.who = "alice".into();
        info.host = "box".into();
        info.pid = 123;
        let err = crate::StateError::Locked {
            environment: "dev".into(),
            holder: Box::new(info.clone()),
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "state of environment dev is locked by alice@box (pid 123, dk apply, since "
            ),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("dk state unlock {}", info.id)),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 5);
    }
}
