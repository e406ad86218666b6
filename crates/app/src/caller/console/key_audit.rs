//! `GET /console/key-audit`: the lesson "who used servicea's key?" (issue
//! 24, scenario 11). With the keys in OpenBao, every signature is one line
//! of OpenBao's audit log: who asked (the AppRole and its policies), what,
//! when. This reads that log's last lines and keeps the signatures with
//! servicea's two keys: its key at the factory (`jwt-factory-servicea`, the
//! factory signs scenario 1's tokens with it) and its own (`servicea`,
//! scenarios 3-4).
//!
//! A service reading the vault's audit log is a workshop shortcut (in
//! production an auditor reads it, not a service): the route is off with
//! PRODUCTION. The log is read from `CONSOLE_AUDIT_LOG`, bounded to its
//! last 1 MiB.

use std::io::{Read as _, Seek as _, SeekFrom};

use s2s_web::outbound::Answer;
use serde_json::{Value, json};

use crate::error::AppError;

/// Most of the log read: its tail.
const TAIL_BYTES: u64 = 1024 * 1024;
/// Most signatures shown.
const SHOWN: usize = 20;

/// The Transit keys that are servicea's, at the factory and its own.
fn is_servicea_signature(path: &str, name: &str) -> bool {
    path.strip_prefix("transit/sign/")
        .is_some_and(|key| key == name || key == format!("jwt-factory-{name}"))
}

/// The last signatures with `name`'s keys in the audit log at `log`.
pub(super) fn signatures(log: &std::path::Path, name: &str) -> Result<Answer, AppError> {
    let mut file = std::fs::File::open(log).map_err(|e| {
        AppError::KeyHolder(format!(
            "no OpenBao audit log at {} ({e}): start OpenBao with `cargo xtask openbao up`, \
             and the factory on it with `cargo xtask start jwt-factory --openbao`",
            log.display()
        ))
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(TAIL_BYTES);
    let mut tail = String::new();
    file.seek(SeekFrom::Start(from))
        .and_then(|_| file.take(TAIL_BYTES).read_to_string(&mut tail))
        .map_err(|e| AppError::KeyHolder(format!("cannot read {}: {e}", log.display())))?;
    let mut entries: Vec<Value> = tail
        .lines()
        // The first line of a tail may be cut: it does not parse, and is skipped.
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["type"] == "response")
        .filter(|e| e["request"]["path"].as_str().is_some_and(|p| is_servicea_signature(p, name)))
        .map(|e| {
            json!({
                "time": e["time"],
                "key": e["request"]["path"].as_str().unwrap_or("").trim_start_matches("transit/sign/"),
                "by": e["auth"]["display_name"],
                "policies": e["auth"]["policies"],
                "error": e["error"],
            })
        })
        .collect();
    let total = entries.len();
    let recent = entries.split_off(total.saturating_sub(SHOWN));
    Ok(Answer {
        status: axum::http::StatusCode::OK,
        body: json!({ "log": log.display().to_string(), "total": total, "signatures": recent }),
    })
}
