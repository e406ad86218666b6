//! The binaries as a user runs them: start-up errors, env-file precedence,
//! `gen-certs`, `--help`. Each test runs the real executable in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::Command,
    time::timeout,
};

const APP: &str = env!("CARGO_BIN_EXE_app");

fn app(cwd: &Path) -> Command {
    let mut c = Command::new(APP);
    c.current_dir(cwd)
        .env("RUST_LOG", "info")
        .kill_on_drop(true);
    for v in common::SERVICE_VARS {
        c.env_remove(v);
    }
    c
}

/// Runs to completion (bounded); exit success, stdout + stderr.
async fn run(mut cmd: Command) -> (bool, String) {
    let out = timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("timed out")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the service and returns the port it says it listens on.
async fn listening_port(mut cmd: Command) -> u16 {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                return rest.trim().parse::<u16>().unwrap();
            }
        }
        panic!("service exited without listening");
    })
    .await
    .expect("service did not start");
    child.kill().await.unwrap();
    port
}

#[tokio::test]
async fn https_without_a_certificate_exits_at_once_saying_to_run_gen_certs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.args([
        "serviceb",
        "--start-https",
        "--port",
        "0",
        "--https-port",
        "0",
    ]);
    let (ok, text) = run(cmd).await;
    assert!(!ok);
    assert!(text.contains("certs/localhost.pem not found"), "{text}");
    assert!(text.contains("app -- gen-certs"), "{text}");
}

#[tokio::test]
async fn a_named_env_file_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.args(["servicea", "--env-file", "nope.env"]);
    let (ok, text) = run(cmd).await;
    assert!(!ok);
    assert!(text.contains("could not load env file nope.env"), "{text}");
}

#[tokio::test]
async fn a_bad_value_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.args(["servicea"]).env("TOKEN_LIFETIME_SECS", "soon");
    let (ok, text) = run(cmd).await;
    assert!(!ok);
    assert!(text.contains("TOKEN_LIFETIME_SECS"), "{text}");
}

#[tokio::test]
async fn precedence_is_flag_then_environment_then_env_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    // The conventional file, env/servicea.env, is found without --env-file.
    std::fs::create_dir_all(dir.path().join("env")).unwrap();
    std::fs::write(
        dir.path().join("env/servicea.env"),
        format!("PORT={file_port}\n"),
    )
    .unwrap();

    let mut cmd = app(dir.path());
    cmd.arg("servicea");
    assert_eq!(
        listening_port(cmd).await,
        file_port,
        "env file beats default"
    );

    let mut cmd = app(dir.path());
    cmd.arg("servicea").env("PORT", env_port.to_string());
    assert_eq!(
        listening_port(cmd).await,
        env_port,
        "environment beats env file"
    );

    let mut cmd = app(dir.path());
    cmd.args(["servicea", "--port", &flag_port.to_string()])
        .env("PORT", env_port.to_string());
    assert_eq!(
        listening_port(cmd).await,
        flag_port,
        "flag beats environment"
    );

    // --env-file picks another file.
    let other_port = free_port();
    std::fs::write(dir.path().join("other.env"), format!("PORT={other_port}\n")).unwrap();
    let mut cmd = app(dir.path());
    cmd.args(["servicea", "--env-file", "other.env"]);
    assert_eq!(listening_port(cmd).await, other_port);
}

#[tokio::test]
async fn gen_certs_writes_four_files_and_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.arg("gen-certs");
    let (ok, text) = run(cmd).await;
    assert!(ok, "{text}");
    for (file, mode) in [
        ("ca.pem", 0o644),
        ("ca-key.pem", 0o600),
        ("localhost.pem", 0o644),
        ("localhost-key.pem", 0o600),
    ] {
        let meta = std::fs::metadata(dir.path().join("certs").join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let before = std::fs::read(dir.path().join("certs/ca.pem")).unwrap();

    let mut cmd = app(dir.path());
    cmd.arg("gen-certs");
    let (ok, text) = run(cmd).await;
    assert!(!ok);
    assert!(text.contains("--force"), "{text}");
    assert_eq!(
        std::fs::read(dir.path().join("certs/ca.pem")).unwrap(),
        before,
        "untouched"
    );

    let mut cmd = app(dir.path());
    cmd.args(["gen-certs", "--force"]);
    assert!(run(cmd).await.0);
    assert_ne!(
        std::fs::read(dir.path().join("certs/ca.pem")).unwrap(),
        before,
        "replaced"
    );
}

#[tokio::test]
async fn gen_keys_writes_the_scenario3_pair() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.arg("gen-keys");
    let (ok, text) = run(cmd).await;
    assert!(ok, "{text}");
    let private =
        std::fs::read_to_string(dir.path().join("scenario-3-keys/jwt-private.pem")).unwrap();
    let public =
        std::fs::read_to_string(dir.path().join("scenario-3-keys/jwt-public.pem")).unwrap();
    let pair = s2s_auth::KeyPair::from_private_pem(&private).unwrap();
    assert_eq!(pair.public().pem(), public);
    let mode = std::fs::metadata(dir.path().join("scenario-3-keys/jwt-private.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn help_explains_every_setting_with_its_env_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.args(["servicea", "--help"]);
    let (ok, text) = run(cmd).await;
    assert!(ok, "{text}");
    for v in common::SERVICE_VARS {
        assert!(
            text.contains(&format!("[env: {v}")),
            "--help lacks {v}:\n{text}"
        );
    }
    let mut cmd = app(dir.path());
    cmd.arg("--help");
    let (ok, text) = run(cmd).await;
    assert!(ok);
    for sub in ["servicea", "serviceb", "servicec", "gen-certs", "gen-keys"] {
        assert!(text.contains(sub), "{sub}");
    }
}
