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

/// The key a Transit signature path (`{mount}/sign/{key}`) names, if it
/// is one of servicea's: its key at the factory, or its own.
fn servicea_key<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let (_mount, key) = path.split_once("/sign/")?;
    (key == name || key == format!("jwt-factory-{name}")).then_some(key)
}

/// The last signatures with `name`'s keys in the audit log at `log`
/// (blocking: a read of up to 1 MiB; call it off the async workers).
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
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(from))
        .and_then(|_| file.take(TAIL_BYTES).read_to_end(&mut bytes))
        .map_err(|e| AppError::KeyHolder(format!("cannot read {}: {e}", log.display())))?;
    // The cut may fall inside a character: its line does not parse, and is
    // skipped like any cut line.
    let tail = String::from_utf8_lossy(&bytes);
    let mut entries: Vec<Value> = tail
        .lines()
        // The first line of a tail may be cut: it does not parse, and is skipped.
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["type"] == "response")
        .filter_map(|e| {
            let key = e["request"]["path"]
                .as_str()
                .and_then(|p| servicea_key(p, name))?;
            Some(json!({
                "time": e["time"],
                "key": key,
                "by": e["auth"]["display_name"],
                "policies": e["auth"]["policies"],
                "error": e["error"],
            }))
        })
        .collect();
    let total = entries.len();
    let recent = entries.split_off(total.saturating_sub(SHOWN));
    Ok(Answer {
        status: axum::http::StatusCode::OK,
        body: json!({ "log": log.display().to_string(), "total": total, "signatures": recent }),
    })
}
