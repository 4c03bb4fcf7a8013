//! The checks from outside: raw HTTP and RESP over TCP, SQL with the host's psql. Each
//! returns what it saw (`Ok("HTTP 200")`) or why it failed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::netns::NetNs;
use super::Check;

/// Run `check` once, from inside `ns`.
pub fn run(check: Check, ns: &NetNs) -> Result<String, String> {
    match check {
        Check::Http(port, body) => ns.enter(move || http_get(port, body))?,
        Check::RedisPing(port) => ns.enter(move || redis_ping(port))?,
        Check::Sql(port) => sql(ns, port),
        Check::Report(port, want) => ns.enter(move || report(port, want))?,
    }
}

/// Send `request` to 127.0.0.1:port; read one answer (`to_end`: until the peer closes).
fn exchange(port: u16, request: &[u8], to_end: bool) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(request)
        .map_err(|e| format!("write {addr}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let n = if to_end {
        buf.clear();
        (&mut s)
            .take(1 << 20)
            .read_to_end(&mut buf)
            .map_err(|e| format!("read {addr}: {e}"))?
    } else {
        s.read(&mut buf).map_err(|e| format!("read {addr}: {e}"))?
    };
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// GET / over HTTP/1.0 (the server closes after the answer): status 200 and `body` in it.
fn http_get(port: u16, body: &str) -> Result<String, String> {
    let got = exchange(port, b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", true)?;
    let status = got.lines().next().unwrap_or_default().to_string();
    if status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200") {
        if !got.contains(body) {
            return Err(format!("HTTP GET :{port}: 200 without {body:?}"));
        }
        Ok(format!("HTTP GET :{port} → 200"))
    } else {
        Err(format!("HTTP GET :{port}: {status:?}"))
    }
}

/// `PING` as a RESP array: the answer must be `+PONG`.
fn redis_ping(port: u16) -> Result<String, String> {
    let got = exchange(port, b"*1\r\n$4\r\nPING\r\n", false)?;
    if got == "+PONG\r\n" {
        Ok(format!("PING :{port} → +PONG"))
    } else {
        Err(format!("PING :{port}: {:?}", got.trim()))
    }
}

/// Listen on 127.0.0.1:port for up to a second; the first connection must send a line
/// containing `want`.
fn report(port: u16, want: &str) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let l = std::net::TcpListener::bind(addr).map_err(|e| format!("listen {addr}: {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("{addr}: {e}"))?;
    let end = std::time::Instant::now() + Duration::from_secs(1);
    let mut conn = loop {
        match l.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > end {
                    return Err(format!("no connection to {addr}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("accept {addr}: {e}")),
        }
    };
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut got = String::new();
    let _ = (&mut conn).take(4096).read_to_string(&mut got);
    if got.contains(want) {
        Ok(format!("worker → :{port} reported its job"))
    } else {
        Err(format!("worker → :{port}: {:?}", got.trim()))
    }
}

/// A table made, written and read back through the network with the host's psql.
fn sql(ns: &NetNs, port: u16) -> Result<String, String> {
    let table = format!("t{}", std::process::id());
    let q = format!(
        "CREATE TABLE {table} (x int); INSERT INTO {table} VALUES (41), (1); SELECT sum(x) FROM {table};"
    );
    let out = ns
        .command("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-c", &q])
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .map_err(|e| format!("spawn psql: {e} (apt-get install postgresql-client)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && text.lines().any(|l| l.trim() == "42") {
        Ok(format!("psql :{port} CREATE/INSERT/SELECT → 42"))
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "psql :{port}: {}",
            err.lines().next().unwrap_or(text.trim())
        ))
    }
}
