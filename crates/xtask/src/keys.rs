//! The keys a stack needs before its first request, when the walkthrough
//! does not make them step by step (the mesh walk, the console, the
//! bench): servicea's key at jwt-factory (unless keys/ gave it one) and
//! servicea's own key pair for scenarios 3-4 (unless there is one). Each
//! request is shown as the `curl` line that does the same.

use std::time::Duration;

use anyhow::{Context as _, Result};
use topology::{FACTORY, SERVICEA};

use crate::{paths, say};

/// Makes the keys that are missing.
pub async fn ensure(client: &reqwest::Client) -> Result<()> {
    say::step(
        "keys: servicea's at jwt-factory (unless keys/ has one), and its own for scenarios 3-4",
    );
    let factory = FACTORY.http_url();
    let known = call(
        client,
        reqwest::Method::GET,
        &format!("{factory}/utils/keys"),
    )
    .await?;
    if !known.contains("\"servicea\"") {
        let url = format!("{factory}/keys/servicea");
        say::shown(&format!("curl -sS -m 10 {url} | cut -c1-90"));
        let key = call(client, reqwest::Method::GET, &url).await?;
        println!("{}\n", key.chars().take(90).collect::<String>());
        shown_post(client, &format!("{factory}/utils/dump")).await?;
    }
    if !paths::root()
        .join("scenario-3-keys/jwt-private.pem")
        .is_file()
    {
        shown_post(client, &format!("{}/gen-keys", SERVICEA.http_url())).await?;
    }
    Ok(())
}

async fn shown_post(client: &reqwest::Client, url: &str) -> Result<()> {
    say::shown(&format!("curl -sS -m 10 -X POST {url}"));
    println!("{}\n", call(client, reqwest::Method::POST, url).await?);
    Ok(())
}

/// The body of a 2xx answer.
async fn call(client: &reqwest::Client, method: reqwest::Method, url: &str) -> Result<String> {
    let answer = client
        .request(method, url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("{url} failed"))?;
    Ok(answer.text().await?)
}
