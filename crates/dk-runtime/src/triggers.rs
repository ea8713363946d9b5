//! Triggers: which transforms `dk run --due` runs now.
//!
//! * `schedule` — due when the cron expression (five fields, or six with seconds; evaluated in
//!   `schedule.timezone`, default UTC) has an occurrence after the start of the transform's last
//!   run and not after now; a transform that never ran is due; `suspend: true` is never due.
//! * `on-change` — due when one of its input datasets was written (a succeeded run record lists
//!   it in `outputs`) after its last succeeded run started, or when it never succeeded. In the
//!   same `dk run --due`, a transform downstream of one that is due is due as well.
//! * `manual` — never due; runs only when a selector names it.
//! * `composite` — due when any of its `policies` is.
//! * no trigger — treated as `on-change`.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use dk_manifest::model::{Schedule, Transform};
use dk_state::{RunRecord, RunStatus, RunSummary};

/// Whether a transform is due, and why (shown by `dk run --due`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub due: bool,
    pub reason: String,
}

impl Due {
    fn yes(reason: impl Into<String>) -> Due {
        Due {
            due: true,
            reason: reason.into(),
        }
    }
    fn no(reason: impl Into<String>) -> Due {
        Due {
            due: false,
            reason: reason.into(),
        }
    }
}

/// The next occurrence of a schedule strictly after `after`.
pub fn next_occurrence(s: &Schedule, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(&s.cron)
        .map_err(|e| format!("cron {:?}: {e}", s.cron))?;
    let tz_name = s.timezone.as_deref().unwrap_or("UTC");
    let tz = chrono_tz::Tz::from_str(tz_name).map_err(|_| {
        format!("timezone {tz_name:?} is not an IANA timezone (e.g. Europe/Berlin)")
    })?;
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("cron {:?}: {e}", s.cron))
}

fn schedule_due(
    s: Option<&Schedule>,
    last: Option<&RunRecord>,
    now: DateTime<Utc>,
) -> Result<Due, String> {
    let Some(s) = s else {
        return Err("trigger policy schedule needs `schedule: {cron: ...}`".into());
    };
    if s.suspend {
        return Ok(Due::no("schedule suspended"));
    }
    let Some(last) = last else {
        return Ok(Due::yes("scheduled and never ran"));
    };
    let next = next_occurrence(s, last.started)?;
    Ok(if next <= now {
        Due::yes(format!(
            "scheduled at {}",
            next.format("%Y-%m-%d %H:%M:%S UTC")
        ))
    } else {
        Due::no(format!("next at {}", next.format("%Y-%m-%d %H:%M:%S UTC")))
    })
}

fn on_change_due(inputs: &[String], last_ok: Option<&RunRecord>, runs: &RunSummary) -> Due {
    let Some(last) = last_ok else {
        return Due::yes("never succeeded");
    };
    let written = inputs
        .iter()
        .filter_map(|i| runs.last_change(i).map(|c| (i, c)))
        .filter(|(_, c)| c.ended > last.started)
        .max_by(|a, b| (a.1.ended, &a.1.run).cmp(&(b.1.ended, &b.1.run)));
    match written {
        Some((dataset, c)) => Due::yes(format!(
            "input {dataset} written by {} ({})",
            c.transform, c.run
        )),
        None => Due::no("no input changed since its last run"),
    }
}

/// Whether `t` (reading `inputs`) is due at `now`, from the summary of the environment's run
/// records. An invalid schedule is an error naming it.
pub fn due(
    t: &Transform,
    inputs: &[String],
    runs: &RunSummary,
    now: DateTime<Utc>,
) -> Result<Due, String> {
    let name = &t.metadata.name;
    let last = runs.latest(name, |s| s != RunStatus::Skipped);
    let last_ok = runs.latest(name, |s| s == RunStatus::Succeeded);
    let trigger = t.spec.trigger.as_ref();
    let policy = trigger.map(|t| t.policy.as_str()).unwrap_or("on-change");
    let one = |p: &str| -> Result<Due, String> {
        match p {
            "schedule" => schedule_due(trigger.and_then(|t| t.schedule.as_ref()), last, now),
            "on-change" => Ok(on_change_due(inputs, last_ok, runs)),
            "manual" => Ok(Due::no("manual: runs only when selected")),
            other => Err(format!("unknown trigger policy {other:?}")),
        }
    };
    if policy == "composite" {
        let policies = trigger.map(|t| t.policies.clone()).unwrap_or_default();
        let mut reasons = Vec::new();
        for p in &policies {
            let d = one(p)?;
            if d.due {
                return Ok(d);
            }
            reasons.push(d.reason);
        }
        return Ok(Due::no(reasons.join("; ")));
    }
    one(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use dk_manifest::model::Trigger;

    fn t(policy: &str, cron: Option<&str>) -> Transform {
        let mut t = Transform::new(dk_manifest::Kind::Transform, "x", Default::default());
        t.spec.trigger = Some(Trigger {
            policy: policy.into(),
            schedule: cron.map(|c| Schedule {
                cron: c.into(),
                timezone: Some("Europe/Berlin".into()),
                suspend: false,
            }),
            policies: vec![],
        });
        t
    }

    fn sum(records: &[RunRecord]) -> RunSummary {
        RunSummary::from_records(records)
    }

    fn rec(transform: &str, started: DateTime<Utc>, outputs: &[&str]) -> RunRecord {
        let mut r = RunRecord::start("i", transform, "dev", None);
        r.started = started;
        r.ended = Some(started + chrono::Duration::seconds(1));
        r.status = RunStatus::Succeeded;
        r.outputs = outputs
            .iter()
            .map(|d| dk_state::RunOutput {
                dataset: d.to_string(),
                rows_written: 1,
                cursor: None,
                rebuilt: false,
            })
            .collect();
        r
    }

    #[test]
    fn schedules_use_the_timezone_and_the_last_run() {
        let daily = t("schedule", Some("0 6 * * *")); // 06:00 Berlin = 05:00 UTC in winter
        let now = Utc
            .with_ymd_and_hms(2026, 1, 10, 5, 30, 0)
            .single()
            .expect("time");
        assert!(
            due(&daily, &[], &sum(&[]), now).expect("due").due,
            "never ran"
        );
        let ran = rec(
            "x",
            Utc.with_ymd_and_hms(2026, 1, 10, 5, 0, 30)
                .single()
                .expect("t"),
            &[],
        );
        let d = due(&daily, &[], &sum(std::slice::from_ref(&ran)), now).expect("due");
        assert!(!d.due, "{d:?}");
        assert!(d.reason.contains("2026-01-11 05:00:00"), "{}", d.reason);
        let yesterday = rec(
            "x",
            Utc.with_ymd_and_hms(2026, 1, 9, 5, 0, 30)
                .single()
                .expect("t"),
            &[],
        );
        assert!(due(&daily, &[], &sum(&[yesterday]), now).expect("due").due);
        assert!(
            !due(&t("manual", None), &[], &sum(&[]), now)
                .expect("manual")
                .due
        );
        assert!(due(&t("schedule", Some("not a cron")), &[], &sum(&[ran]), now).is_err());
    }

    #[test]
    fn on_change_looks_for_writes_of_inputs_after_the_last_run() {
        let tr = t("on-change", None);
        let now = Utc::now();
        let base = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("t");
        let mine = rec("x", base, &["out"]);
        let older = rec("up", base - chrono::Duration::hours(1), &["in"]);
        let inputs = vec!["in".to_string()];
        assert!(
            !due(&tr, &inputs, &sum(&[older.clone(), mine.clone()]), now)
                .expect("d")
                .due
        );
        let newer = rec("up", base + chrono::Duration::hours(1), &["in"]);
        let d = due(&tr, &inputs, &sum(&[older, mine, newer]), now).expect("d");
        assert!(
            d.due && d.reason.contains("input in written by up"),
            "{d:?}"
        );
    }
}
