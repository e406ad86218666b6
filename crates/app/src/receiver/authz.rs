//! Authorization by workload identity (scenario 7), in the spirit of
//! Istio's `AuthorizationPolicy` with `from.source.principals`.
//!
//! A receiver's policy is one small JSON file (`AUTHZ_POLICY_FILE`, e.g.
//! `env/serviceb-authz.json`), shaped like the Istio YAML it mirrors
//! (`deploy/`), and re-read when it changes:
//!
//! ```json
//! { "rules": [ { "from": { "principals": ["cluster.local/ns/default/sa/servicea"] },
//!                "to":   { "paths": ["/scenario7-server"] } } ] }
//! ```
//!
//! The default is deny: a path that needs an identity is allowed only to the
//! principals a rule names for it. No verified client certificate is a 401;
//! a verified one that no rule allows is a 403 naming the caller, the path
//! and the allowed principals.

use std::{path::Path, sync::Arc};

use s2s_auth::watched::WatchedFile;
use s2s_web::identity::{ClientCert, PeerIdentity};
use serde::Deserialize;

use crate::error::AppError;

/// The policy file's shape: Istio's `spec.rules`, `from.source` flattened.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Policy {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rule {
    pub from: From,
    pub to: To,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct From {
    pub principals: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct To {
    pub paths: Vec<String>,
}

impl Policy {
    /// Parses and checks a policy: every path absolute, every principal a
    /// `<trust domain>/<path>` (no `*`: this small policy has no wildcards).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let policy: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for rule in &policy.rules {
            if let Some(p) = rule.to.paths.iter().find(|p| !p.starts_with('/')) {
                return Err(format!("path {p:?} must start with /"));
            }
            if let Some(p) = rule
                .from
                .principals
                .iter()
                .find(|p| p.contains('*') || !p.contains('/') || p.starts_with("spiffe://"))
            {
                return Err(format!(
                    "principal {p:?} must read like cluster.local/ns/default/sa/NAME (no spiffe://, no *)"
                ));
            }
        }
        Ok(policy)
    }

    /// Every principal allowed on `path`.
    pub(crate) fn allowed(&self, path: &str) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.to.paths.iter().any(|p| p == path))
            .flat_map(|r| r.from.principals.iter().map(String::as_str))
            .collect()
    }
}

/// A receiver's policy file, parsed once and re-read when it changes.
pub(super) fn watch(path: &Path) -> WatchedFile<Policy> {
    WatchedFile::new(
        path,
        "authorization policy",
        "See the README's \"Authorization by identity\" for its shape",
        Policy::parse,
    )
}

/// The caller's identity if `policy` allows it on `path`.
pub(super) fn authorize(
    policy: Option<&WatchedFile<Policy>>,
    path: &str,
    cert: &ClientCert,
) -> Result<Arc<PeerIdentity>, AppError> {
    let id = match cert {
        ClientCert::Verified(id) => Arc::clone(id),
        ClientCert::None => {
            return Err(AppError::NoIdentity(format!(
                "{path} needs a client certificate (mTLS): none was presented"
            )));
        }
        ClientCert::Unusable(why) => {
            return Err(AppError::NoIdentity(format!(
                "{path} needs a workload identity: {why}"
            )));
        }
    };
    let policy = match policy {
        Some(file) => Some(file.get()?),
        None => None,
    };
    let allowed: Vec<String> = policy
        .as_deref()
        .map(|p| p.allowed(path).into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    if allowed.contains(&id.principal) {
        tracing::info!(
            "{path}: caller {} allowed by the policy (allowed: {})",
            id.principal,
            allowed.join(", ")
        );
        return Ok(id);
    }
    Err(AppError::NotAllowed {
        principal: id.principal.clone(),
        path: path.to_owned(),
        allowed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_lists_the_principals_of_a_path_and_nothing_else() {
        let p = Policy::parse(
            r#"{"rules":[{"from":{"principals":["cluster.local/ns/default/sa/servicea"]},
                          "to":{"paths":["/scenario7-server"]}}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.allowed("/scenario7-server"),
            ["cluster.local/ns/default/sa/servicea"]
        );
        assert!(p.allowed("/other").is_empty());
    }

    #[test]
    fn wildcards_unknown_fields_and_relative_paths_are_refused() {
        for bad in [
            r#"{"rules":[{"from":{"principals":["*"]},"to":{"paths":["/x"]}}]}"#,
            r#"{"rules":[{"from":{"principals":["spiffe://cluster.local/ns/default/sa/a"]},"to":{"paths":["/x"]}}]}"#,
            r#"{"rules":[{"from":{"principals":["cluster.local/ns/default/sa/a"]},"to":{"paths":["x"]}}]}"#,
            r#"{"rules":[{"from":{"principals":[],"namespaces":["default"]},"to":{"paths":["/x"]}}]}"#,
            r#"{"rules":"#,
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }
}
