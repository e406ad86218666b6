//! KV v2 records with check-and-set: what several replicas of a service
//! must agree on lives here, and a write that raced another one is refused
//! ([`OpenBaoError::Conflict`]) instead of overwriting it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{OpenBao, OpenBaoError};

/// A record and the version it was read at (the `cas` of the next write).
#[derive(Debug, Clone)]
pub struct Record {
    pub data: Value,
    pub version: u64,
}

impl OpenBao {
    /// The record at `path`, or `None` (never written, or deleted).
    pub async fn kv_get(&self, mount: &str, path: &str) -> Result<Option<Record>, OpenBaoError> {
        let full = format!("{mount}/data/{path}");
        let answer = match self.call(Method::GET, &full, None).await {
            Ok(Some(answer)) => answer,
            Ok(None) | Err(OpenBaoError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(data) = answer.pointer("/data/data").filter(|d| !d.is_null()) else {
            return Ok(None);
        };
        let version = answer
            .pointer("/data/metadata/version")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.bad(&full, "no metadata.version"))?;
        Ok(Some(Record {
            data: data.clone(),
            version,
        }))
    }

    /// Writes `data` at `path` if its version is still `cas` (0: only if
    /// absent); returns the new version.
    pub async fn kv_put(
        &self,
        mount: &str,
        path: &str,
        data: &Value,
        cas: u64,
    ) -> Result<u64, OpenBaoError> {
        let full = format!("{mount}/data/{path}");
        let body = json!({ "data": data, "options": { "cas": cas } });
        let answer = self
            .call(Method::POST, &full, Some(&body))
            .await?
            .ok_or_else(|| self.bad(&full, "no body"))?;
        answer
            .pointer("/data/version")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.bad(&full, "no data.version"))
    }

    /// The names under `prefix` (a folder), empty if there are none.
    pub async fn kv_list(&self, mount: &str, prefix: &str) -> Result<Vec<String>, OpenBaoError> {
        let full = format!("{mount}/metadata/{prefix}");
        let list = Method::from_bytes(b"LIST").map_err(|e| self.bad(&full, &e.to_string()))?;
        let answer = match self.call(list, &full, None).await {
            Ok(Some(answer)) => answer,
            Ok(None) | Err(OpenBaoError::Refused { status: 404, .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(answer
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Deletes the record at `path` with all its versions and metadata.
    pub async fn kv_destroy(&self, mount: &str, path: &str) -> Result<(), OpenBaoError> {
        let full = format!("{mount}/metadata/{path}");
        match self.call(Method::DELETE, &full, None).await {
            Ok(_) | Err(OpenBaoError::Refused { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
