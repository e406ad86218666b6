//! The workshop console in a real browser: Debian's Chromium, headless,
//! driven by Playwright (`tests/browser/console.py`), against a real stack
//! (jwt-factory, servicea, serviceb, servicec on free ports, real TLS, key
//! files in a temp dir). It loads the page, runs scenarios 1 (valid and
//! expired), 3 and 6, the replay lesson and a key rotation, checks the hops,
//! the decoded `aud`/`sub`/`kid` and the refusal reason it shows, fails on
//! any console error, and saves screenshots under `target/console/`.

use test_support::{
    Options, Stack,
    browser::{chromium, python_with_playwright, screenshots_dir},
    mesh::repo_root,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_shows_hops_tokens_checks_and_refusals() {
    let (python, chromium) = (python_with_playwright(), chromium());
    let stack = Stack::start(Options::default()).await;
    let script = repo_root().join("crates/app/tests/browser/console.py");
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .arg(stack.a.url())
        .arg(screenshots_dir())
        .env("CHROMIUM_BIN", chromium)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(output.status.success(), "the browser test failed:\n{text}");
    assert!(
        text.contains("all checks passed, no console error"),
        "{text}"
    );
}
