//! The administrator's side, run with the root token by the demo and by
//! the tests, never by a service: the engines, the audit device's
//! configuration, and for each service a policy, an AppRole role and its
//! credentials (two files, 0600). A service then starts with those files
//! alone.
//!
//! Each step is idempotent: running the setup again against the same
//! OpenBao keeps what is there (keys, records) and writes fresh
//! credentials.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{OpenBao, OpenBaoError};

/// The Transit key names of the factory's key ids: `jwt-factory-{keyId}`.
pub const FACTORY_KEY_PREFIX: &str = "jwt-factory-";
/// The KV folder of the factory's shared records.
pub const FACTORY_KV_FOLDER: &str = "jwt-factory";

/// The factory's own Transit mount: its keys alone are there, so its
/// policy names them with `+` (exactly one path segment) and grants
/// nothing under them (no `config`, `trim`, `import` or `export`).
pub const FACTORY_TRANSIT_MOUNT: &str = "jwt-factory-transit";
/// The Transit mount of the services' own keys (servicea's).
pub const SERVICES_TRANSIT_MOUNT: &str = "transit";

/// The factory's policy: in its own Transit mount, create a key (with a
/// type and nothing else, so never exportable), read its public halves,
/// rotate it, sign with it; and its own KV folder (ring records; used
/// `jti`s, which it may also delete once expired). OpenBao's `*` is a
/// prefix match only at the end of a path, so the key paths use `+` (one
/// segment): `keys/+` is a key, never `keys/NAME/config`. No export, no
/// backup, no key configuration, no deletion, no other mount.
pub fn factory_policy(transit: &str, kv: &str) -> String {
    let f = FACTORY_KV_FOLDER;
    format!(
        r#"# jwt-factory: sign with its keys, never see them.
path "{transit}/keys/+" {{
  capabilities = ["create", "read", "update"]
  allowed_parameters = {{ "type" = ["rsa-2048", "ecdsa-p256", "ecdsa-p384", "ed25519"] }}
}}
path "{transit}/keys/+/rotate" {{
  capabilities = ["update"]
}}
path "{transit}/sign/+" {{
  capabilities = ["update"]
}}
path "{kv}/data/{f}/*" {{
  capabilities = ["create", "read", "update"]
}}
path "{kv}/metadata/{f}/*" {{
  capabilities = ["list", "read"]
}}
# Used assertion jtis, shared by the replicas: swept once expired.
path "{kv}/metadata/{f}/jti/*" {{
  capabilities = ["list", "read", "delete"]
}}
"#
    )
}

/// A service's own key (servicea's, scenarios 3-4 and its client
/// assertions) is the Transit key named after it.
pub fn service_policy(transit: &str, service: &str) -> String {
    format!(
        r#"# {service}: sign with its own key, read its public half; nothing else.
path "{transit}/sign/{service}" {{
  capabilities = ["update"]
}}
path "{transit}/keys/{service}" {{
  capabilities = ["read"]
}}
"#
    )
}

/// Creates the Transit key `name` of `alg`'s type unless it exists (the
/// administrator's: a service's policy only lets it sign with its key).
pub async fn transit_key(
    root: &OpenBao,
    transit: &str,
    name: &str,
    alg: s2s_auth::SigningAlgorithm,
) -> Result<(), OpenBaoError> {
    if root.transit_key(transit, name).await?.is_none() {
        root.create_transit_key(transit, name, alg).await?;
        tracing::info!("OpenBao: created the Transit key {name}");
    }
    Ok(())
}

/// Revokes `role` centrally (seed 002's "revoked any time, centrally"):
/// destroys every secret id of the AppRole role, so it cannot log in
/// again, and revokes every token its logins made, so what it holds stops
/// working at once.
pub async fn revoke(root: &OpenBao, role: &str) -> Result<usize, OpenBaoError> {
    let list = Method::from_bytes(b"LIST").map_err(|e| root.bad("LIST", &e.to_string()))?;
    let path = format!("auth/approle/role/{role}/secret-id");
    let accessors = match root.call(list.clone(), &path, None).await {
        Ok(answer) => strings(answer.as_ref(), "/data/keys"),
        Err(OpenBaoError::Refused { status: 404, .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    for accessor in accessors {
        let body = json!({ "secret_id_accessor": accessor });
        root.call(
            Method::POST,
            &format!("auth/approle/role/{role}/secret-id-accessor/destroy"),
            Some(&body),
        )
        .await?;
    }
    let mut revoked = 0;
    let tokens = strings(
        root.call(list, "auth/token/accessors", None)
            .await?
            .as_ref(),
        "/data/keys",
    );
    for accessor in tokens {
        let body = json!({ "accessor": accessor });
        let Ok(Some(info)) = root
            .call(Method::POST, "auth/token/lookup-accessor", Some(&body))
            .await
        else {
            continue;
        };
        if info.pointer("/data/meta/role_name").and_then(Value::as_str) == Some(role) {
            root.call(Method::POST, "auth/token/revoke-accessor", Some(&body))
                .await?;
            revoked += 1;
        }
    }
    tracing::info!("OpenBao: revoked {role}: its secret ids destroyed, {revoked} tokens revoked");
    Ok(revoked)
}

fn strings(answer: Option<&Value>, pointer: &str) -> Vec<String> {
    answer
        .and_then(|a| a.pointer(pointer))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The server configuration that turns the audit device on: a file
/// device writing one JSON line per request and response to `log`.
/// OpenBao 2 takes audit devices from its configuration only (the API
/// refuses to enable one: a token that could would choose where secrets'
/// hashes are written); pass it with `bao server -config`.
pub fn audit_config(log: &Path) -> String {
    format!(
        "audit \"file\" \"audit-log\" {{\n  description = \"every request and answer, one JSON line each\"\n  options {{\n    file_path = {:?}\n  }}\n}}\n",
        log.display().to_string()
    )
}

/// Where a service's credentials were written.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub role_id_file: PathBuf,
    pub secret_id_file: PathBuf,
}

/// Enables what the services use, unless enabled: Transit at each of
/// `transits`, KV v2 at `kv`, and the AppRole auth method.
pub async fn engines(root: &OpenBao, transits: &[&str], kv: &str) -> Result<(), OpenBaoError> {
    let mounts = root
        .call(Method::GET, "sys/mounts", None)
        .await?
        .unwrap_or_default();
    let mounted = |name: &str| {
        mounts.get(format!("{name}/")).is_some()
            || mounts.pointer(&format!("/data/{name}~1")).is_some()
    };
    for transit in transits.iter().filter(|t| !mounted(t)) {
        let body = json!({ "type": "transit" });
        root.call(Method::POST, &format!("sys/mounts/{transit}"), Some(&body))
            .await?;
        tracing::info!("OpenBao: enabled the Transit engine at {transit}/");
    }
    if !mounted(kv) {
        let body = json!({ "type": "kv", "options": { "version": "2" } });
        root.call(Method::POST, &format!("sys/mounts/{kv}"), Some(&body))
            .await?;
        tracing::info!("OpenBao: enabled KV v2 at {kv}/");
    }
    let auths = root
        .call(Method::GET, "sys/auth", None)
        .await?
        .unwrap_or_default();
    if auths.pointer("/data/approle~1").is_none() && auths.get("approle/").is_none() {
        let body = json!({ "type": "approle" });
        root.call(Method::POST, "sys/auth/approle", Some(&body))
            .await?;
        tracing::info!("OpenBao: enabled AppRole logins");
    }
    Ok(())
}

/// Writes `policy` as `role`'s policy, makes the AppRole role `role`
/// (tokens live an hour, renewable to four), and writes its role id and a
/// new secret id into `dir/{role}.role-id` and `dir/{role}.secret-id`
/// (0600, atomically).
pub async fn approle(
    root: &OpenBao,
    role: &str,
    policy: &str,
    dir: &Path,
) -> Result<Credentials, OpenBaoError> {
    root.call(
        Method::PUT,
        &format!("sys/policies/acl/{role}"),
        Some(&json!({ "policy": policy })),
    )
    .await?;
    let body = json!({
        "token_policies": [role],
        "token_ttl": "1h",
        "token_max_ttl": "4h",
        "secret_id_ttl": "0",
    });
    root.call(
        Method::POST,
        &format!("auth/approle/role/{role}"),
        Some(&body),
    )
    .await?;
    let path = format!("auth/approle/role/{role}/role-id");
    let role_id = string_at(
        root,
        &path,
        root.call(Method::GET, &path, None).await?,
        "/data/role_id",
    )?;
    let path = format!("auth/approle/role/{role}/secret-id");
    let secret_id = string_at(
        root,
        &path,
        root.call(Method::POST, &path, Some(&json!({}))).await?,
        "/data/secret_id",
    )?;
    let credentials = Credentials {
        role_id_file: dir.join(format!("{role}.role-id")),
        secret_id_file: dir.join(format!("{role}.secret-id")),
    };
    let write = |path: &Path, contents: &str| {
        s2s_auth::files::write_atomic(path, contents.as_bytes(), s2s_auth::files::PRIVATE)
            .map_err(|e| OpenBaoError::Settings(format!("cannot write {}: {e}", path.display())))
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| OpenBaoError::Settings(format!("cannot create {}: {e}", dir.display())))?;
    write(&credentials.role_id_file, &role_id)?;
    write(&credentials.secret_id_file, &secret_id)?;
    tracing::info!(
        "OpenBao: role {role} with policy {role}; its credentials are in {} and {}",
        credentials.role_id_file.display(),
        credentials.secret_id_file.display()
    );
    Ok(credentials)
}

fn string_at(
    root: &OpenBao,
    path: &str,
    answer: Option<Value>,
    pointer: &str,
) -> Result<String, OpenBaoError> {
    answer
        .as_ref()
        .and_then(|a| a.pointer(pointer))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| root.bad(path, &format!("no {pointer}")))
}
