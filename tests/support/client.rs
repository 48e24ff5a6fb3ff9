//! The test client: one HTTP/1.1 request on a new connection, the parsed response, and a
//! loop of requests on its own thread.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A parsed HTTP/1.1 response.
#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    /// Status, headers and the start of the body as text: what a failure message needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.text();
        let start: String = text.chars().take(300).collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &start)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Response {
    /// The value of header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a new connection; panics on transport errors.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    exchange(addr, &head, body).unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

/// `GET path` with `Host: host` on a new connection.
pub fn get(addr: SocketAddr, host: &str, path: &str) -> Response {
    request(addr, "GET", path, host, &[], b"")
}

/// `GET path` with `Host: localhost` on a new connection, transport errors returned.
pub fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n"),
        b"",
    )
}

/// Sends `head` (request line and headers) and `body` on a new connection, which it asks
/// to close after the response, and reads that response.
fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<Response> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let end = format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(format!("{head}{end}").as_bytes())?;
    conn.write_all(body)?;
    read_response(&mut BufReader::new(conn))
}

/// Reads one response (Content-Length, chunked, or until close).
pub fn read_response<R: BufRead>(r: &mut R) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| bad("bad header"))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Checks that `r` is a 200 from the backend named `backend`.
pub fn assert_answered_by(r: &Response, backend: &str) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend_of(r), backend, "{r:?}");
}

/// Which backend answered (from the `x-backend` header).
pub fn backend_of(r: &Response) -> String {
    r.header("x-backend").unwrap_or("").to_owned()
}

/// A request loop on its own thread: GETs on new connections until stopped; returns the
/// number of successes and the failures (status or error) it saw.
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl RequestLoop {
    /// Starts sending `GET path` to `addr`.
    pub fn start(addr: SocketAddr, path: &'static str) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut ok = 0;
            let mut failures = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match try_get(addr, path) {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => failures.push(format!("status {}: {}", r.status, r.text())),
                    Err(e) => failures.push(format!("error: {e}")),
                }
            }
            (ok, failures)
        });
        RequestLoop {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the loop and checks that none of its requests failed (`during` says when they
    /// ran, for the message); returns how many succeeded, at least one.
    pub fn finish_clean(self, during: &str) -> u64 {
        let (ok, failures) = self.finish();
        assert!(
            failures.is_empty(),
            "failed requests {during}: {failures:?}"
        );
        assert!(ok > 0, "no request succeeded {during}");
        ok
    }

    /// Stops the loop: (successes, failures).
    pub fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("request loop panicked")
    }
}
