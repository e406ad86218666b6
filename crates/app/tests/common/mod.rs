//! A real stack for tests: jwt-factory, servicea, serviceb and servicec as
//! real servers on ephemeral ports (port 0), with real key files and a real
//! local CA in a temp dir. Listeners are bound before the servers start, so
//! a test can send requests at once: no sleeps, no readiness polling.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Once,
};

use app::{
    Role, ServiceState,
    config::{Cli, Command},
};
use clap::Parser as _;
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// Every variable the services read. Tests that run the `app` binary
/// remove them all, so the host's environment cannot change what they see;
/// `--help` must explain each.
pub const SERVICE_VARS: [&str; 29] = [
    "PORT",
    "HOST",
    "SERVICE_NAME",
    "CALLER",
    "JWT_FACTORY_ENDPOINT",
    "SERVICE_B_ENDPOINT",
    "SERVICE_B_ENDPOINT_HTTPS",
    "SERVICE_C_ENDPOINT",
    "SERVICE_C_ENDPOINT_HTTPS",
    "SERVICE_A_PRIVATE_KEY_PATH",
    "SERVICE_A_PUBLIC_KEY_PATH",
    "SERVER_PRIVATE_KEY_PATH",
    "SERVER_PUBLIC_KEY_PATH",
    "START_HTTPS",
    "HTTPS_PORT",
    "ISSUER",
    "ALGORITHM",
    "CA_CERT_PATH",
    "TOKEN_LIFETIME_SECS",
    "LEEWAY_SECS",
    "CONNECT_TIMEOUT_MS",
    "REQUEST_TIMEOUT_MS",
    "JWKS_URL",
    "JWKS_MAX_AGE_SECS",
    "JWKS_REFRESH_MIN_SECS",
    "JWKS_MAX_STALE_SECS",
    "FACTORY_ISSUER",
    "FACTORY_TOKEN_LIFETIME_SECS",
    "HEADER_TIMEOUT_MS",
];

/// A running server and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub https: Option<SocketAddr>,
    /// The service's state (not for jwt-factory), to look inside caches.
    pub state: Option<ServiceState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn https_url(&self) -> String {
        format!(
            "https://localhost:{}",
            self.https.expect("no https listener").port()
        )
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
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

fn shutdown_pair() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        if std::env::var_os("TEST_LOG").is_some() {
            s2s_auth::telemetry::init();
        }
    });
}

pub async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Starts jwt-factory on `listener` with keys in `keys_dir` (RS256).
pub fn start_factory(listener: TcpListener, keys_dir: &Path) -> Running {
    start_factory_with(listener, keys_dir, "RS256")
}

/// Starts jwt-factory on `listener` with keys in `keys_dir`, signing with `alg`.
pub fn start_factory_with(listener: TcpListener, keys_dir: &Path, alg: &str) -> Running {
    start_factory_flags(listener, keys_dir, &["--algorithm", alg])
}

/// Starts jwt-factory with `flags` after the defaults of the tests
/// (RS256, 3600 s tokens, 30 s leeway), which they may override.
pub fn start_factory_flags(listener: TcpListener, keys_dir: &Path, flags: &[&str]) -> Running {
    let keys_dir = keys_dir.to_str().unwrap();
    let mut settings = vec![
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
    let config = jwt_factory::Config::parse_from(argv);
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = shutdown_pair();
    let state = jwt_factory::AppState::load(config);
    let task = tokio::spawn(jwt_factory::run(listener, state, shutdown));
    Running {
        addr,
        https: None,
        state: None,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Parses `app <role> <args...>` exactly as the binary would.
pub fn service_args(role: Role, args: &[String]) -> app::config::ServiceArgs {
    let mut argv = vec!["app".to_string(), role.name().to_string()];
    argv.extend_from_slice(args);
    match Cli::parse_from(argv).command {
        Command::Servicea(a) | Command::Serviceb(a) | Command::Servicec(a) => a,
        _ => unreachable!(),
    }
}

/// Starts a service; `https` is the listener and certificate dir, if any.
pub async fn start_service(
    role: Role,
    args: &[String],
    http: TcpListener,
    https: Option<(TcpListener, &Path)>,
) -> Running {
    let args = service_args(role, args);
    let addr = http.local_addr().unwrap();
    let (https, https_addr) = match https {
        Some((listener, certs)) => {
            let addr = listener.local_addr().unwrap();
            let config = app::tls::server_config(
                &certs.join("localhost.pem"),
                &certs.join("localhost-key.pem"),
            )
            .await
            .unwrap();
            (Some((listener, config)), Some(addr))
        }
        None => (None, None),
    };
    let state = ServiceState::new(role, args).unwrap();
    let (stop, shutdown) = shutdown_pair();
    let task = tokio::spawn(app::run(state.clone(), http, https, shutdown));
    Running {
        addr,
        https: https_addr,
        state: Some(state),
        stop: Some(stop),
        task: Some(task),
    }
}

/// The whole walkthrough's cast, in one temp dir.
pub struct Stack {
    pub dir: TempDir,
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
}

impl Stack {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn certs(&self) -> PathBuf {
        self.path("certs")
    }

    /// Everything from scratch: certificates, factory with servicea's key,
    /// scenario-3 keys (unless told not to), the three services.
    pub async fn start(opts: Options) -> Stack {
        init();
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        s2s_auth::certs::generate(
            &s2s_auth::certs::CertFiles::in_dir(&certs),
            false,
            Default::default(),
        )
        .unwrap();
        let private = dir.path().join("scenario-3-keys/jwt-private.pem");
        let public = dir.path().join("scenario-3-keys/jwt-public.pem");
        let alg = opts.algorithm.unwrap_or("RS256");
        if !opts.no_scenario3_keys {
            app::keygen::generate(alg.parse().unwrap(), &private, &public).unwrap();
        }

        let mut factory_flags = vec!["--algorithm", alg];
        factory_flags.extend_from_slice(&opts.factory_args);
        let factory = start_factory_flags(bind().await, &dir.path().join("keys"), &factory_flags);
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
        let common = |extra: &[String]| -> Vec<String> {
            let mut v: Vec<String> = [
                "--service-a-private-key-path",
                private.to_str().unwrap(),
                "--service-a-public-key-path",
                public.to_str().unwrap(),
                "--ca-cert-path",
                certs.join("ca.pem").to_str().unwrap(),
                "--issuer",
                "https://service-issuer",
                "--algorithm",
                alg,
                "--caller",
                "servicea",
                "--token-lifetime-secs",
                "30",
                "--leeway-secs",
                "5",
            ]
            .map(String::from)
            .to_vec();
            v.extend_from_slice(extra);
            v
        };
        let mut a_args = common(&opts.a_args);
        a_args.extend([
            "--jwt-factory-endpoint".into(),
            factory_url,
            "--service-b-endpoint".into(),
            format!("http://127.0.0.1:{}", port(&b_http)),
            "--service-c-endpoint".into(),
            format!("http://127.0.0.1:{}", port(&c_http)),
            "--service-b-endpoint-https".into(),
            format!("https://localhost:{}", port(&b_https)),
            "--service-c-endpoint-https".into(),
            format!("https://localhost:{}", port(&c_https)),
        ]);
        let mut bc_args = common(&opts.bc_args);
        bc_args.extend(["--jwt-factory-endpoint".into(), factory.url()]);

        let b_certs = opts.b_certs.clone().unwrap_or_else(|| certs.clone());
        let b = start_service(Role::B, &bc_args, b_http, Some((b_https, &b_certs))).await;
        let c = start_service(Role::C, &bc_args, c_http, Some((c_https, &certs))).await;
        let a = start_service(Role::A, &a_args, a_http, None).await;

        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(
                &std::fs::read(certs.join("ca.pem")).unwrap(),
            )
            .unwrap()])
            .build()
            .unwrap();
        let stack = Stack {
            dir,
            factory,
            a,
            b,
            c,
            client,
        };
        let r = stack
            .client
            .get(format!("{}/keys/servicea", stack.factory.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        stack
    }

    /// `GET` on servicea; the status and JSON body.
    pub async fn get_a(&self, path: &str) -> (u16, serde_json::Value) {
        get_json(&self.client, &format!("{}{path}", self.a.url())).await
    }
}

/// `GET url`; the status and the body, which must be JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{url}: not JSON ({status}): {text}"));
    assert_eq!(
        ct.as_deref(),
        Some("application/json"),
        "{url}: content-type"
    );
    (status, body)
}
