//! The binaries as a user runs them: start-up errors, env-file precedence,
//! `gen-certs`, `--help`. Each test runs the real executable in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

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
    for v in common::all_service_vars() {
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

/// Starts the service and returns the port it says it listens on.
async fn listening_port(cmd: Command) -> u16 {
    let log = log_until_listening(cmd).await;
    let Some(rest) = log.split("listening on http://127.0.0.1:").nth(1) else {
        panic!("no listening line: {log}")
    };
    rest.trim().parse::<u16>().unwrap()
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
    assert!(text.contains("certs/serviceb.pem not found"), "{text}");
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
    let [file_port, env_port, flag_port] = common::free_ports();
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
    let other_port = common::free_port();
    std::fs::write(dir.path().join("other.env"), format!("PORT={other_port}\n")).unwrap();
    let mut cmd = app(dir.path());
    cmd.args(["servicea", "--env-file", "other.env"]);
    assert_eq!(listening_port(cmd).await, other_port);
}

#[tokio::test]
async fn gen_certs_writes_four_files_keeps_valid_ones_and_replaces_with_force() {
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
        ("servicea.pem", 0o644),
        ("servicea-key.pem", 0o600),
        ("gateway-key.pem", 0o600),
        ("admin.pem", 0o644),
        ("admin-key.pem", 0o600),
    ] {
        let meta = std::fs::metadata(dir.path().join("certs").join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let before = std::fs::read(dir.path().join("certs/ca.pem")).unwrap();

    // Valid certificates are there: said so, exit 0, nothing replaced.
    let mut cmd = app(dir.path());
    cmd.arg("gen-certs");
    let (ok, text) = run(cmd).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("valid certificates already in certs"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("certs/ca.pem")).unwrap(),
        before,
        "untouched"
    );

    // A broken file is named, with the way out, and left alone.
    std::fs::write(dir.path().join("certs/localhost.pem"), "garbage").unwrap();
    let mut cmd = app(dir.path());
    cmd.arg("gen-certs");
    let (ok, text) = run(cmd).await;
    assert!(!ok, "{text}");
    assert!(text.contains("not usable"), "{text}");
    assert!(text.contains("--force"), "{text}");
    assert_eq!(
        text.trim().lines().count(),
        1,
        "one line, no backtrace: {text}"
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

/// An older `certs/` (CA and localhost certificate only) gets the workload
/// certificates under its own CA; a second run keeps them; a broken one is
/// named and left alone.
#[tokio::test]
async fn gen_certs_adds_workload_certificates_to_an_older_certs_dir() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let (ok, text) = run({
        let mut c = app(dir.path());
        c.arg("gen-certs");
        c
    })
    .await;
    assert!(ok, "{text}");
    for name in s2s_web::pki::WORKLOADS {
        std::fs::remove_file(certs.join(format!("{name}.pem"))).unwrap();
        std::fs::remove_file(certs.join(format!("{name}-key.pem"))).unwrap();
    }
    let ca = std::fs::read(certs.join("ca.pem")).unwrap();

    let gen_certs = || {
        let mut c = app(dir.path());
        c.arg("gen-certs");
        c
    };
    let (ok, text) = run(gen_certs()).await;
    assert!(ok, "{text}");
    assert!(text.contains("kept the valid CA"), "{text}");
    assert!(text.contains("issued workload certificates"), "{text}");
    assert_eq!(std::fs::read(certs.join("ca.pem")).unwrap(), ca, "same CA");
    let files = s2s_web::pki::CertFiles::in_dir(&certs);
    for name in s2s_web::pki::WORKLOADS {
        s2s_web::pki::check_workload(&files, name, "cluster.local")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let key = std::fs::metadata(certs.join(format!("{name}-key.pem"))).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600, "{name}");
    }

    let (ok, text) = run(gen_certs()).await;
    assert!(ok && text.contains("valid certificates already"), "{text}");

    std::fs::write(certs.join("serviceb.pem"), "garbage").unwrap();
    let (ok, text) = run(gen_certs()).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("serviceb.pem") && text.contains("--force"),
        "{text}"
    );
}

/// `app fetch-token` prints the token and nothing else on stdout (its log
/// goes to stderr), so `TOKEN=$(app fetch-token)` works; `--bound` gets a
/// token bound to servicea's certificate.
#[tokio::test]
async fn fetch_token_prints_only_the_token_bound_or_not() {
    let s = common::Stack::start(common::Options::default()).await;
    for bound in [false, true] {
        let mut c = app(s.dir.path());
        c.args(["fetch-token", "--audience", "serviceb"])
            .args(s.files.servicea_flags(s.alg, &s.factory.url()))
            .args(["--jwt-factory-endpoint-https", &s.factory.https_url()]);
        if bound {
            c.arg("--bound");
        }
        let out = timeout(Duration::from_secs(20), c.output())
            .await
            .expect("timed out")
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(
            stderr.contains("POST"),
            "the narration is on stderr: {stderr}"
        );
        let token = stdout.trim();
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
        let claims = common::factory::payload(token);
        assert_eq!(claims["aud"], "serviceb", "{claims}");
        assert_eq!(
            claims.get("cnf").is_some(),
            bound,
            "bound {bound}: {claims}"
        );
    }
}

#[tokio::test]
async fn a_user_error_is_one_line_even_with_rust_backtrace_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.env("RUST_BACKTRACE", "1")
        .args(["servicea", "--env-file", "nope.env"]);
    let (ok, text) = run(cmd).await;
    assert!(!ok);
    let lines: Vec<&str> = text.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with("error: could not load env file nope.env"),
        "{text}"
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
    for role in ["servicea", "serviceb", "servicec", "gen-keys"] {
        let mut cmd = app(dir.path());
        cmd.args([role, "--help"]);
        let (ok, text) = run(cmd).await;
        assert!(ok, "{text}");
        let own = common::env_vars(role);
        assert!(own.len() >= 3, "{role}: {own:?}");
        for v in &own {
            assert!(
                text.contains(&format!("[env: {v}")),
                "{role} --help lacks {v}:\n{text}"
            );
        }
        // Each role lists only what it reads.
        for v in common::all_service_vars() {
            if !own.contains(&v) {
                assert!(
                    !text.contains(&format!("[env: {v}")),
                    "{role} --help lists {v}, which it does not read:\n{text}"
                );
            }
        }
    }
    let a = common::env_vars("servicea");
    for v in [
        "START_HTTPS",
        "HTTPS_PORT",
        "SERVER_PUBLIC_KEY_PATH",
        "SERVER_PRIVATE_KEY_PATH",
    ] {
        assert!(!a.iter().any(|x| x == v), "servicea reads {v}");
    }
    let b = common::env_vars("serviceb");
    for v in [
        "SERVICE_B_ENDPOINT",
        "SERVICE_B_ENDPOINT_HTTPS",
        "SERVICE_C_ENDPOINT",
        "SERVICE_A_PRIVATE_KEY_PATH",
    ] {
        assert!(!b.iter().any(|x| x == v), "serviceb reads {v}");
    }
    let mut cmd = app(dir.path());
    cmd.arg("--help");
    let (ok, text) = run(cmd).await;
    assert!(ok);
    for sub in ["servicea", "serviceb", "servicec", "gen-certs", "gen-keys"] {
        assert!(text.contains(sub), "{sub}");
    }
}

/// `app mesh-config` as a user runs it: writes each sidecar's files and
/// prints the envoy commands; refuses a run folder others may write to, a
/// policy it cannot translate (naming the file and field), a workload
/// named twice.
#[tokio::test]
async fn mesh_config_writes_the_sidecars_files_and_refuses_what_it_cannot_trust() {
    let dir = tempfile::tempdir().unwrap();
    let istio = common::mesh::istio("");
    let mut gen_certs = app(dir.path());
    gen_certs.arg("gen-certs");
    assert!(run(gen_certs).await.0);
    let mesh_config = |extra: &[&str]| {
        let mut c = app(dir.path());
        c.args(["mesh-config", "--base"]).arg(&istio).args(extra);
        c
    };
    let (ok, out) = run(mesh_config(&[])).await;
    assert!(ok, "{out}");
    assert_eq!(out.matches("envoy -c ").count(), 3, "{out}");
    for w in ["servicea", "serviceb", "servicec"] {
        for f in ["envoy.json", "lds.json", "cds.json", "rds.json"] {
            let path = dir.path().join("target/mesh").join(w).join(f);
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert!(json.is_object(), "{}", path.display());
        }
    }

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: x\n\
         spec:\n  rules:\n    - when:\n        - key: a\n          values: [b]\n",
    )
    .unwrap();
    let (ok, out) = run(mesh_config(&[bad.to_str().unwrap()])).await;
    assert!(!ok, "{out}");
    assert!(out.contains("bad.yaml") && out.contains("`when`"), "{out}");

    let (ok, out) = run(mesh_config(&[
        "--workloads",
        "servicea=127.0.0.1:3000,servicea=127.0.0.1:3001",
    ]))
    .await;
    assert!(!ok && out.contains("names servicea twice"), "{out}");

    let run_dir = dir.path().join("target/mesh");
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, out) = run(mesh_config(&[])).await;
    assert!(!ok && out.contains("chmod go-w"), "{out}");
}

/// `app --help` counts the scenarios the table holds (it said "1-9" after
/// scenario 10 landed): the count is checked here against the table.
#[tokio::test]
async fn help_names_as_many_scenarios_as_the_table_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.arg("--help");
    let (ok, text) = run(cmd).await;
    assert!(ok, "{text}");
    let n = app::scenarios::SCENARIOS.len();
    assert!(text.contains(&format!("scenarios 1-{n}")), "{text}");
}

/// A bad value from the environment (or an env file) names the variable,
/// not a flag nobody typed; `--help` shows `[env: PORT]`, not the value an
/// env file put in the environment (issue 22, item 6).
#[tokio::test]
async fn a_bad_env_value_names_the_variable_and_help_hides_env_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app(dir.path());
    cmd.args(["servicea"]).env("PORT", "abc");
    let (ok, text) = run(cmd).await;
    assert!(!ok, "{text}");
    assert!(text.contains("environment variable PORT"), "{text}");
    assert!(text.contains("\"abc\""), "{text}");

    let mut cmd = app(dir.path());
    cmd.args(["servicea", "--port", "abc"]);
    let (ok, text) = run(cmd).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("--port"),
        "a typed flag is named as typed: {text}"
    );

    std::fs::write(dir.path().join("other.env"), "PORT=3999\n").unwrap();
    let mut cmd = app(dir.path());
    cmd.args(["servicea", "--env-file", "other.env", "--help"]);
    let (ok, text) = run(cmd).await;
    assert!(ok, "{text}");
    assert!(text.contains("[env: PORT]"), "{text}");
    assert!(
        !text.contains("3999"),
        "the env file's value in --help: {text}"
    );
}

/// The settings renamed for meaning (servicea's and the receivers'
/// `ISSUER` and `TOKEN_LIFETIME_SECS` were jwt-factory's names too) are
/// still read under their old names, and the log names the new one; with
/// both set (the old one in the shell, the new one in the env file), the
/// new one wins and the log says the old one was ignored.
#[tokio::test]
async fn old_setting_names_still_work_and_the_log_says_which_wins() {
    // (the env file, the process environment, what the log must say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 2] = [
        (
            "",
            &[
                ("ISSUER", "https://old-name"),
                ("TOKEN_LIFETIME_SECS", "20"),
            ],
            &[
                "ISSUER is deprecated here: it is SELF_SIGNED_ISSUER now",
                "TOKEN_LIFETIME_SECS is deprecated here: it is SELF_SIGNED_LIFETIME_SECS now",
            ],
        ),
        (
            "SELF_SIGNED_LIFETIME_SECS=30\n",
            &[("TOKEN_LIFETIME_SECS", "20")],
            &[
                "TOKEN_LIFETIME_SECS is deprecated here and ignored: SELF_SIGNED_LIFETIME_SECS is set too",
            ],
        ),
    ];
    for (env_file, vars, said) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("env")).unwrap();
        std::fs::write(dir.path().join("env/serviceb.env"), env_file).unwrap();
        let mut cmd = app(dir.path());
        cmd.args(["serviceb", "--port", "0"])
            .envs(vars.iter().copied());
        let log = log_until_listening(cmd).await;
        for line in said {
            assert!(log.contains(line), "{vars:?}: {log}");
        }
    }
}

/// Starts the service, returns its log up to its "listening on" line, and
/// stops it.
async fn log_until_listening(mut cmd: Command) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let listening = line.contains("listening on");
            seen.push(line);
            if listening {
                return;
            }
        }
        panic!("exited: {seen:?}");
    })
    .await
    .expect("the service did not start");
    child.kill().await.unwrap();
    seen.join("\n")
}
