//! A real stack for tests: jwt-factory, servicea, serviceb and servicec as
//! real servers on ephemeral ports (port 0), with real key files and a real
//! local CA in a temp dir. Listeners are bound before the servers start, so
//! a test can send requests at once: no sleeps, no readiness polling.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        Arc, Once,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use app::{
    Role, caller,
    cli::{Cli, Command},
    receiver,
};
use clap::{CommandFactory as _, Parser as _};
use serde_json::Value;
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{
    files::{Files, peer_flags},
    reply::{get_json, json_reply},
};

/// Every env variable `app <role>` reads, straight from its clap
/// definition, so the list cannot drift from the code. Tests that run the
/// binary remove them all, so the host's environment cannot change what
/// they see; `--help` must explain each.
pub fn env_vars(role: &str) -> Vec<String> {
    let cli = Cli::command();
    let Some(sub) = cli.find_subcommand(role) else {
        panic!("no subcommand {role}")
    };
    sub.get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// The env variables of every role.
pub fn all_service_vars() -> Vec<String> {
    let mut vars: Vec<String> = ["servicea", "serviceb", "servicec", "gen-keys"]
        .into_iter()
        .flat_map(env_vars)
        .collect();
    vars.sort();
    vars.dedup();
    vars
}

/// `N` distinct free ports on 127.0.0.1, for servers that bind their own
/// (or for an address nothing must listen on): from below the ephemeral
/// range and handed out once per process ([`crate::mesh`]'s rule), so no
/// `bind(0)` of a test's own servers can take one first. (Ports bound to
/// port 0 and released were: a factory once got the "gateway" port.)
pub fn free_ports<const N: usize>() -> [u16; N] {
    let ports = crate::mesh::free_ports(N);
    std::array::from_fn(|i| ports[i])
}

/// One port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// A listener on 127.0.0.1 that accepts every connection, counts it, holds
/// it open and never answers: a peer that hangs, or a tripwire. Stops when
/// dropped.
pub struct Silent {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Silent {
    /// Starts listening on a port of its own.
    pub async fn start() -> Self {
        let listener = bind().await;
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(sock);
            }
        });
        Self { addr, hits, task }
    }

    /// `http://` this listener, then `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Resolves when the server's [`Running`] says stop (or is dropped).
pub struct Shutdown(oneshot::Receiver<()>);

impl Future for Shutdown {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A running server and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub https: Option<SocketAddr>,
    /// A receiver's state (serviceb, servicec), to look inside caches.
    pub receiver: Option<receiver::State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Spawns `serve` on `addr`'s listener; it runs until [`Shutdown`].
    pub fn spawn<F>(addr: SocketAddr, serve: impl FnOnce(Shutdown) -> F) -> Self
    where
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, rx) = oneshot::channel();
        Self {
            addr,
            https: None,
            receiver: None,
            stop: Some(stop),
            task: Some(tokio::spawn(serve(Shutdown(rx)))),
        }
    }

    /// The plain-http base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// The https base URL (by name, as the certificate says).
    pub fn https_url(&self) -> String {
        format!(
            "https://localhost:{}",
            self.https.expect("no https listener").port()
        )
    }

    /// Stops the server and waits until it has finished (at most the
    /// drain time and 10 s more).
    pub async fn stop(&mut self) {
        self.stop_within(s2s_web::shutdown::DRAIN + Duration::from_secs(10))
            .await;
    }

    /// Stops the server and waits until it has finished, at most `limit`.
    pub async fn stop_within(&mut self, limit: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(limit, task)
                .await
                .unwrap_or_else(|_| panic!("server did not stop within {limit:?}"))
                .expect("server task panicked")
                .expect("server failed");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Once per test process: the TLS crypto provider, and logs when
/// `TEST_LOG` is set.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        if std::env::var_os("TEST_LOG").is_some() {
            // Tests run to the end of the process: keep the writer alive.
            std::mem::forget(s2s_web::telemetry::init());
        }
    });
}

/// Polls `url` every 10 ms until it answers 2xx, for at most `within`;
/// panics if `child` (the server behind it: nginx, Envoy) exits first or
/// the time runs out, with `log()` (what it printed) in the message.
pub async fn wait_child_answers(
    child: &mut tokio::process::Child,
    client: &reqwest::Client,
    url: &str,
    within: Duration,
    log: impl Fn() -> String,
) {
    // The supervisor's readiness wait (cargo xtask), shared: one loop.
    if let Err(e) = xtask::ready::wait_answers(child, client, url, within, log).await {
        panic!("{e:#}");
    }
}

/// A listener on 127.0.0.1, on a port of its own.
pub async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// jwt-factory's settings as the tests run it, every one a flag so env
/// variables on the machine cannot change a test: 127.0.0.1, keys in
/// `keys_dir`, RS256, 3600 s tokens, 30 s leeway, JWK Set fresh for 300 s;
/// then `flags`, which override those or add others.
pub fn factory_config(keys_dir: &Path, flags: &[&str]) -> jwt_factory::Config {
    let keys_dir = keys_dir.to_str().unwrap();
    let mut settings = vec![
        ("--host", "127.0.0.1"),
        ("--port", "0"),
        ("--keys-dir", keys_dir),
        ("--issuer", "https://jwt-factory/"),
        ("--algorithm", "RS256"),
        ("--token-lifetime-secs", "3600"),
        ("--leeway-secs", "30"),
        ("--jwks-max-age-secs", "300"),
    ];
    for pair in flags.chunks(2) {
        let [flag, value] = pair else {
            panic!("flags come in pairs: {flags:?}")
        };
        match settings.iter_mut().find(|(f, _)| f == flag) {
            Some(setting) => setting.1 = value,
            None => settings.push((flag, value)),
        }
    }
    let mut argv = vec!["jwt-factory"];
    argv.extend(settings.iter().flat_map(|(f, v)| [*f, *v]));
    jwt_factory::Config::parse_from(argv)
}

/// Starts jwt-factory on a port of its own, keys in `keys_dir`, with the
/// settings of [`factory_config`].
pub async fn start_factory(keys_dir: &Path, flags: &[&str]) -> Running {
    start_factory_on(bind().await, keys_dir, flags)
}

/// As [`start_factory`], on `listener` (to restart a factory on the port
/// its clients already know).
pub fn start_factory_on(listener: TcpListener, keys_dir: &Path, flags: &[&str]) -> Running {
    let state = jwt_factory::AppState::load(factory_config(keys_dir, flags));
    Running::spawn(listener.local_addr().unwrap(), |shutdown| {
        jwt_factory::run(listener, state, shutdown)
    })
}

/// As [`start_factory`], through [`jwt_factory::AppState::open`], so any
/// KEY_BACKEND works (`openbao` logs in and loads the rings first): the
/// factory's start-up error if it cannot.
pub async fn start_factory_opened(
    keys_dir: &Path,
    flags: &[&str],
) -> Result<Running, openbao::OpenBaoError> {
    let listener = bind().await;
    let state = jwt_factory::AppState::open(factory_config(keys_dir, flags)).await?;
    Ok(Running::spawn(listener.local_addr().unwrap(), |shutdown| {
        jwt_factory::run(listener, state, shutdown)
    }))
}

/// As [`start_factory`], also serving https with the workload certificate
/// `certs/jwt-factory.pem` and client certificates from `certs/ca.pem`
/// (`MTLS_MODE` from `flags`, default permissive): scenario 8's bound tokens.
pub async fn start_factory_tls(keys_dir: &Path, flags: &[&str], certs: &Path) -> Running {
    start_factory_tls_on(bind().await, bind().await, keys_dir, flags, certs).await
}

/// As [`start_factory_tls`], on `listener` and `https` (to restart a
/// factory on the ports its clients already know).
pub async fn start_factory_tls_on(
    listener: TcpListener,
    https: TcpListener,
    keys_dir: &Path,
    flags: &[&str],
    certs: &Path,
) -> Running {
    let https_addr = https.local_addr().unwrap();
    let port = https_addr.port().to_string();
    let mut all = vec!["--start-https", "true", "--https-port", &port];
    all.extend_from_slice(flags);
    let config = factory_config(keys_dir, &all);
    let tls = s2s_web::tls::ServerTls {
        cert: certs.join("jwt-factory.pem"),
        key: certs.join("jwt-factory-key.pem"),
        client_ca: certs.join("ca.pem"),
        mode: config.effective_mtls_mode(),
    };
    let rustls = s2s_web::tls::server_config(&tls).await.unwrap();
    let state = jwt_factory::AppState::load(config);
    let mut running = Running::spawn(listener.local_addr().unwrap(), |shutdown| {
        jwt_factory::run_with_https(listener, Some((https, rustls)), state, shutdown)
    });
    running.https = Some(https_addr);
    running
}

/// Parses `app <role> <args...>` exactly as the binary would.
/// Flags a role does not read are dropped from `args`, if another role
/// reads them (tests hand one list of flags to every role); any other
/// unknown flag still reaches clap and fails the test.
pub fn service_command(role: Role, args: &[String]) -> Command {
    let mut argv = vec!["app".to_string(), role.name().to_string()];
    argv.extend(flags_for(role.name(), args));
    match Cli::try_parse_from(&argv) {
        Ok(cli) => cli.command,
        Err(e) => panic!("{argv:?}: {e}"),
    }
}

/// The flags of `args` (`--name value` or `--name=value`) that `role`
/// reads, leaving out those only other roles read.
pub fn flags_for(role: &str, args: &[String]) -> Vec<String> {
    let cli = Cli::command();
    let long_names = |sub: &str| -> Vec<String> {
        cli.find_subcommand(sub)
            .map(|c| {
                c.get_arguments()
                    .filter_map(|a| a.get_long().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let own = long_names(role);
    let others: Vec<String> = ["servicea", "serviceb", "gen-keys", "gen-certs"]
        .into_iter()
        .flat_map(long_names)
        .collect();
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        let name = arg
            .strip_prefix("--")
            .map(|n| n.split('=').next().unwrap_or(n));
        let takes_next =
            !arg.contains('=') && it.peek().is_some_and(|next| !next.starts_with("--"));
        match name {
            Some(n) if !own.iter().any(|o| o == n) && others.iter().any(|o| o == n) => {
                if takes_next {
                    it.next();
                }
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

/// servicea's state as `app servicea <args...>` builds it.
pub fn servicea_state(args: &[String]) -> caller::State {
    match service_command(Role::A, args) {
        Command::Servicea(a) => caller::State::new(a.settle()).unwrap(),
        other => panic!("not servicea: {other:?}"),
    }
}

/// As [`servicea_state`], through [`caller::State::open`] as `app
/// servicea` does: with `--self-key-backend openbao`, it logs in to
/// OpenBao and reads its Transit key first.
pub async fn servicea_state_opened(args: &[String]) -> caller::State {
    match service_command(Role::A, args) {
        Command::Servicea(a) => caller::State::open(a.settle()).await.unwrap(),
        other => panic!("not servicea: {other:?}"),
    }
}

/// serviceb's or servicec's state as `app <role> <args...>` builds it.
pub fn receiver_state(role: Role, args: &[String]) -> receiver::State {
    match service_command(role, args) {
        Command::Serviceb(a) | Command::Servicec(a) => {
            receiver::State::new(a.settle(role)).unwrap()
        }
        other => panic!("not a receiver: {other:?}"),
    }
}

/// [`init`], then starts `role` with `flags` on a port of its own, plain
/// HTTP only: what a test of one service's own limits needs.
pub async fn start_service_with(role: Role, flags: &[&str]) -> Running {
    init();
    let args: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
    start_service(role, &args, bind().await, None).await
}

/// Starts a service; `https` is the listener and certificate dir, if any
/// (receivers only).
pub async fn start_service(
    role: Role,
    args: &[String],
    http: TcpListener,
    https: Option<(TcpListener, &Path)>,
) -> Running {
    let addr = http.local_addr().unwrap();
    if role == Role::A {
        assert!(https.is_none(), "servicea has no https listener");
        let state = servicea_state_opened(args).await;
        return Running::spawn(addr, |shutdown| caller::run(state, http, shutdown));
    }
    let state = receiver_state(role, args);
    let (https, https_addr) = match https {
        Some((listener, certs)) => {
            let addr = listener.local_addr().unwrap();
            // The receiver's workload certificate where gen-certs wrote one.
            let own = certs.join(format!("{}.pem", role.name()));
            let (cert, key) = if own.exists() {
                (own, certs.join(format!("{}-key.pem", role.name())))
            } else {
                (certs.join("localhost.pem"), certs.join("localhost-key.pem"))
            };
            // A dir with a server certificate alone (the fault tests'
            // odd certificates) serves one-way TLS.
            let client_ca = certs.join("ca.pem");
            let mode = if client_ca.exists() {
                state.mtls_mode()
            } else {
                s2s_web::tls::MtlsMode::Off
            };
            let tls = s2s_web::tls::ServerTls {
                cert,
                key,
                client_ca,
                mode,
            };
            let config = s2s_web::tls::server_config(&tls).await.unwrap();
            (Some((listener, config)), Some(addr))
        }
        None => (None, None),
    };
    let serving = state.clone();
    let mut running = Running::spawn(addr, |shutdown| {
        receiver::run(serving, http, https, shutdown)
    });
    running.https = https_addr;
    running.receiver = Some(state);
    running
}

/// The factory's client registry for `POST /token` (scenario 6), as
/// `env/clients.json` has it, written as `dir/clients.json`: servicea
/// authenticates with the public key at `servicea_public` and may ask for
/// serviceb and servicec; serviceb and servicec have no key. Its path.
pub fn write_clients(dir: &Path, servicea_public: &Path) -> String {
    let registry = serde_json::json!({ "clients": [
        { "client_id": "servicea", "key_file": servicea_public,
          "audiences": ["serviceb", "servicec"] },
        { "client_id": "serviceb", "audiences": [] },
        { "client_id": "servicec", "audiences": [] },
    ]});
    let path = dir.join("clients.json");
    std::fs::write(&path, registry.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The whole walkthrough's cast, in one temp dir.
pub struct Stack {
    pub dir: TempDir,
    /// Where the certificates and keys are, under `dir`.
    pub files: Files,
    /// `ALGORITHM` of every process.
    pub alg: &'static str,
    pub factory: Running,
    pub a: Running,
    pub b: Running,
    pub c: Running,
    pub client: reqwest::Client,
}

/// Options for [`Stack::start`].
#[derive(Clone, Default)]
pub struct Options {
    /// Extra flags for servicea (e.g. timeouts).
    pub a_args: Vec<String>,
    /// Extra flags for serviceb and servicec.
    pub bc_args: Vec<String>,
    /// Point servicea at this factory URL instead of the real one.
    pub factory_url_for_a: Option<String>,
    /// Run serviceb's https with the certificates in this dir instead.
    pub b_certs: Option<PathBuf>,
    /// Skip `gen-keys` (scenario-3 key pair) at start.
    pub no_scenario3_keys: bool,
    /// `ALGORITHM` of every process (default RS256).
    pub algorithm: Option<&'static str>,
    /// Extra flags for jwt-factory (e.g. a short token lifetime).
    pub factory_args: Vec<&'static str>,
    /// Every process with `--production` (every workshop shortcut off);
    /// servicea's factory key is then created by the admin identity over
    /// mTLS.
    pub production: bool,
}

impl Stack {
    /// `rel` in the stack's temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Everything from scratch: certificates, factory with servicea's key,
    /// scenario-3 keys (unless told not to), the three services.
    pub async fn start(opts: Options) -> Stack {
        init();
        let dir = tempfile::tempdir().unwrap();
        let alg = opts.algorithm.unwrap_or("RS256");
        let keys = (!opts.no_scenario3_keys).then(|| alg.parse().unwrap());
        let files = Files::generate(dir.path(), keys);

        let clients = write_clients(dir.path(), &files.public);
        let mut factory_flags = vec!["--algorithm", alg, "--clients-file", &clients];
        factory_flags.extend_from_slice(&opts.factory_args);
        let production: &[&str] = if opts.production {
            &["--production", "true"]
        } else {
            &[]
        };
        factory_flags.extend_from_slice(production);
        let factory = start_factory_tls(&files.keys, &factory_flags, &files.certs).await;
        let (b_http, b_https, c_http, c_https, a_http) = (
            bind().await,
            bind().await,
            bind().await,
            bind().await,
            bind().await,
        );
        let port = |l: &TcpListener| l.local_addr().unwrap().port();
        let factory_url = opts
            .factory_url_for_a
            .clone()
            .unwrap_or_else(|| factory.url());
        let mut a_args = files.servicea_flags(alg, &factory_url);
        a_args.extend([
            "--jwt-factory-endpoint-https".to_owned(),
            factory.https_url(),
        ]);
        a_args.extend_from_slice(&opts.a_args);
        a_args.extend(production.iter().map(|f| (*f).to_owned()));
        a_args.extend(peer_flags(
            &format!("http://127.0.0.1:{}", port(&b_http)),
            &format!("https://localhost:{}", port(&b_https)),
            &format!("http://127.0.0.1:{}", port(&c_http)),
            &format!("https://localhost:{}", port(&c_https)),
        ));
        let mut bc_args = files.receiver_flags(alg, &factory.url());
        bc_args.extend_from_slice(&opts.bc_args);
        bc_args.extend(production.iter().map(|f| (*f).to_owned()));

        let b_certs = opts.b_certs.clone().unwrap_or_else(|| files.certs.clone());
        let b = start_service(Role::B, &bc_args, b_http, Some((b_https, &b_certs))).await;
        let c = start_service(Role::C, &bc_args, c_http, Some((c_https, &files.certs))).await;
        let a = start_service(Role::A, &a_args, a_http, None).await;

        let client = files.client().build().unwrap();
        let stack = Stack {
            dir,
            files,
            alg,
            factory,
            a,
            b,
            c,
            client,
        };
        let (status, body) = if opts.production {
            let admin = stack.files.client_as("admin");
            let url = format!("{}/keys/servicea", stack.factory.https_url());
            get_json(&admin, &url).await
        } else {
            stack.get(&stack.factory, "/keys/servicea").await
        };
        assert_eq!(
            status, 200,
            "creating servicea's key at the factory: {body}"
        );
        stack
    }

    /// `GET` on `server`; the status and JSON body.
    pub async fn get(&self, server: &Running, path: &str) -> (u16, Value) {
        get_json(&self.client, &format!("{}{path}", server.url())).await
    }

    /// `GET` on servicea; the status and JSON body.
    pub async fn get_a(&self, path: &str) -> (u16, Value) {
        self.get(&self.a, path).await
    }

    /// `POST` on `server` with no body; the status and JSON body.
    pub async fn post(&self, server: &Running, path: &str) -> (u16, Value) {
        json_reply(self.client.post(format!("{}{path}", server.url()))).await
    }

    /// servicea's `/scenario{n}`: 200 with a fresh token, then 403 with
    /// `?expired=1`; both answers.
    pub async fn valid_then_expired(&self, n: u8) -> (Value, Value) {
        let (status, valid) = self.get_a(&format!("/scenario{n}")).await;
        assert_eq!(status, 200, "{} scenario{n}: {valid}", self.alg);
        let (status, expired) = self.get_a(&format!("/scenario{n}?expired=1")).await;
        assert_eq!(status, 403, "{} scenario{n} expired: {expired}", self.alg);
        (valid, expired)
    }
}
