//! nginx in front of several jwt-factory replicas (issue 24, item 5): one
//! address for every client, round robin over the replicas, kept-alive
//! connections to each. A replica that refuses connections (stopped) is
//! skipped: nginx passes the request to the next one, also a POST, since
//! nothing was sent yet. A replica that dies while it answers fails that
//! one request (502): nginx does not send a POST twice.
//!
//! The demo (`scripts/demo.sh`, scenario 11) and the tests render it with
//! [`write`], then run `nginx -p RUN_DIR -c factory-lb.conf`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// The configuration: nginx on `listen`, the replicas at `replicas`.
pub fn render(listen: SocketAddr, replicas: &[SocketAddr]) -> String {
    let servers: String = replicas
        .iter()
        .map(|r| format!("        server {r} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        "# jwt-factory replicas behind one address (rendered by cargo xtask: issue 24).
worker_processes 1;
daemon off;
pid nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    upstream jwt_factory {{
{servers}        keepalive 32;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://jwt_factory;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host localhost;
            # A replica that refuses the connection: the next one answers.
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
        }}
    }}
}}
"
    )
}

/// Writes [`render`]'s configuration as `run_dir/factory-lb.conf` (and the
/// folder nginx needs for request bodies); its path.
pub fn write(
    run_dir: &Path,
    listen: SocketAddr,
    replicas: &[SocketAddr],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(run_dir.join("tmp"))?;
    let path = run_dir.join("factory-lb.conf");
    std::fs::write(&path, render(listen, replicas))?;
    Ok(path)
}
