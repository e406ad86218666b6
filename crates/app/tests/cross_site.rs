//! Issue 21, item 4: key management any web page could trigger. Against
//! the real factory, servicea and serviceb, the requests a browser sends
//! when a page of another site asks it to (an `<img>`, an auto-submitted
//! form, a `fetch`) are refused with a JSON 403 and change nothing; the
//! same requests as curl sends them, and the service's own pages, work as
//! before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::RequestBuilder;
use serde_json::Value;
use test_support::{Options, Running, Stack, json_reply, status_and_value};

/// What a browser adds when a page of another site sends the request.
enum Browser {
    /// `<img src=".../keys/servicea">`: no Origin on a no-cors GET.
    Image,
    /// `<form method=post action=...>` auto-submitted: a simple form POST.
    Form,
    /// The same form from a browser without Fetch Metadata: Origin only.
    OldBrowserForm,
    /// A page on a sibling subdomain (`same-site` is still another origin).
    SameSite,
    /// A sandboxed page or a redirect: `Origin: null`.
    NullOrigin,
}

fn as_browser(rb: RequestBuilder, how: &Browser) -> RequestBuilder {
    match how {
        Browser::Image => rb
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "no-cors")
            .header("sec-fetch-dest", "image"),
        Browser::Form => rb
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=1"),
        Browser::OldBrowserForm => rb
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=1"),
        Browser::SameSite => rb
            .header("sec-fetch-site", "same-site")
            .header("origin", "http://other.localhost"),
        Browser::NullOrigin => rb.header("origin", "null"),
    }
}

const EVERY_BROWSER: [Browser; 5] = [
    Browser::Image,
    Browser::Form,
    Browser::OldBrowserForm,
    Browser::SameSite,
    Browser::NullOrigin,
];

/// `GET /utils/publicKey/servicea`'s kid: which key servicea signs with.
async fn servicea_kid(s: &Stack) -> String {
    let (status, body) = s.get(&s.factory, "/utils/publicKey/servicea").await;
    assert_eq!(status, 200, "{body}");
    body["kid"].as_str().unwrap().to_owned()
}

/// The phases of servicea's keys at the factory.
async fn servicea_phases(s: &Stack) -> Vec<String> {
    let (status, body) = s.get(&s.factory, "/utils/keys/servicea/status").await;
    assert_eq!(status, 200, "{body}");
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["phase"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a JSON 403 under `key` that says it was refused for another site.
fn assert_refused(what: &str, status: u16, body: &Value, key: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    let message = body[key].as_str().unwrap_or_default();
    assert!(
        message.contains("another site") || message.contains("another origin"),
        "{what}: {body}"
    );
    assert!(message.contains("changes state"), "{what}: {body}");
}

fn request(s: &Stack, server: &Running, method: &str, path: &str) -> RequestBuilder {
    let url = format!("{}{path}", server.url());
    match method {
        "GET" => s.client.get(url),
        "POST" => s.client.post(url),
        other => panic!("{other}"),
    }
}

/// Every state-changing endpoint of the factory, as every kind of page
/// would reach it: 403, and no key, key id or file changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_factory_refuses_what_a_page_of_another_site_sends() {
    let s = Stack::start(Options::default()).await;
    let kid = servicea_kid(&s).await;
    let dumped = std::fs::read_dir(&s.files.keys).map_or(0, |d| d.count());
    let (_, ids) = s.get(&s.factory, "/utils/keys").await;
    let endpoints = [
        ("GET", "/keys/servicea"),
        ("POST", "/keys/servicea"),
        ("GET", "/keys/evil1"),
        ("POST", "/keys/servicea/rotate?emergency=1"),
        ("POST", "/keys/servicea/rotate"),
        ("POST", "/utils/dump"),
        ("POST", "/dump"),
        ("POST", "/issueToken/servicea"),
        ("POST", "/token"),
        ("POST", "/introspect"),
    ];
    for (method, path) in endpoints {
        for how in &EVERY_BROWSER {
            let rb = as_browser(request(&s, &s.factory, method, path), how);
            let (status, body) = json_reply(rb).await;
            assert_refused(&format!("{method} {path}"), status, &body, "error");
        }
    }
    assert_eq!(servicea_kid(&s).await, kid, "servicea's key was replaced");
    assert_eq!(servicea_phases(&s).await, ["current"], "a rotation ran");
    assert_eq!(s.get(&s.factory, "/utils/keys").await.1, ids, "a key id");
    let now = std::fs::read_dir(&s.files.keys).map_or(0, |d| d.count());
    assert_eq!(now, dumped, "keys were dumped");
    // Scenario 6 (servicea's key at /token) still works.
    assert_eq!(s.get_a("/scenario6").await.0, 200);

    // Reading stays open to any page: the JWK Set is public.
    for path in ["/.well-known/jwks.json", "/utils/keys"] {
        let rb = as_browser(
            s.client.get(format!("{}{path}", s.factory.url())),
            &Browser::Image,
        );
        assert_eq!(json_reply(rb).await.0, 200, "{path}");
    }
}

/// The same requests as curl sends them (no Sec-Fetch-*, no Origin), and
/// from the service's own pages (same-origin, or typed: none), work as the
/// README shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_the_services_own_pages_work_as_before() {
    let s = Stack::start(Options::default()).await;
    let port = s.factory.addr.port();
    let own = [
        ("curl", vec![]),
        (
            "same-origin",
            vec![("sec-fetch-site", "same-origin".to_owned())],
        ),
        ("typed", vec![("sec-fetch-site", "none".to_owned())]),
        (
            "own origin, no Fetch Metadata",
            vec![("origin", format!("http://127.0.0.1:{port}"))],
        ),
    ];
    for (who, headers) in own {
        let kid = servicea_kid(&s).await;
        let mut rb = s.client.get(format!("{}/keys/servicea", s.factory.url()));
        for (name, value) in &headers {
            rb = rb.header(*name, value);
        }
        let (status, body) = json_reply(rb).await;
        assert_eq!(status, 200, "{who}: {body}");
        assert_ne!(
            servicea_kid(&s).await,
            kid,
            "{who}: the key was not replaced"
        );
        for path in ["/utils/dump", "/dump", "/keys/servicea/rotate?emergency=1"] {
            let mut rb = s.client.post(format!("{}{path}", s.factory.url()));
            for (name, value) in &headers {
                rb = rb.header(*name, value);
            }
            let (status, body) = json_reply(rb).await;
            assert_eq!(status, 200, "{who} {path}: {body}");
        }
    }
    assert!(s.files.keys.join("servicea-private.pem").exists());
}

/// servicea's `POST /gen-keys` and its console controls, and any unsafe
/// method on a receiver, get the same rule from the shared middleware.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicea_and_the_receivers_refuse_it_too() {
    let s = Stack::start(Options {
        no_scenario3_keys: true,
        ..Options::default()
    })
    .await;
    for how in &EVERY_BROWSER {
        let rb = as_browser(request(&s, &s.a, "POST", "/gen-keys"), how);
        let (status, body) = json_reply(rb).await;
        assert_refused("POST /gen-keys", status, &body, "message");
        let rb = as_browser(
            request(&s, &s.a, "POST", "/console/factory-keys/rotate").header("x-console", "1"),
            how,
        );
        let (status, body) = json_reply(rb).await;
        assert_refused("console rotate", status, &body, "message");
        let rb = as_browser(request(&s, &s.b, "POST", "/hello"), how);
        let (status, body) = json_reply(rb).await;
        assert_refused("serviceb POST /hello", status, &body, "message");
    }
    assert!(!s.files.private.exists(), "a page created servicea's key");
    assert_eq!(servicea_phases(&s).await, ["current"], "a rotation ran");

    // As curl: created.
    let (status, body) = s.post(&s.a, "/gen-keys").await;
    assert_eq!(status, 200, "{body}");
    assert!(s.files.private.exists());
    // From the console's page: rotated.
    let rb = request(&s, &s.a, "POST", "/console/factory-keys/rotate")
        .header("x-console", "1")
        .header("sec-fetch-site", "same-origin")
        .header("origin", s.a.url());
    let (status, body) = json_reply(rb).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(servicea_phases(&s).await.len(), 2, "{body}");
    // A receiver's routes are reads: a cross-site GET still answers.
    let rb = as_browser(
        s.client.get(format!("{}/hello", s.b.url())),
        &Browser::Image,
    );
    assert_eq!(status_and_value(rb).await.0, 200);
    // The curl POST there is a 405, as before.
    assert_eq!(s.post(&s.b, "/hello").await.0, 405);
}
