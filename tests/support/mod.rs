//! Test harness: real augur processes, real backend processes, real clients, all on loopback.
//! Readiness is always awaited by connecting, never by sleeping.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const AUGUR: &str = env!("CARGO_BIN_EXE_augur");

/// A fresh directory for one test's files.
pub fn temp_dir(test: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "augur-e2e-{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A loopback port for a listener, never handed out twice by this process.
///
/// Ports come from a counter below the kernel's ephemeral range (32768 and up), so neither
/// another `free_port` call nor a client connection's local port can take one between the
/// test choosing it and augur binding it (port 0 would hand back recently freed ports).
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 10) * 1_200;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(base + n % 1_200).expect("port in range"); // at most 31999
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A loopback address on a port nothing listens on (connections are refused).
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Waits until `addr` accepts a TCP connection.
pub fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never listened on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until nothing accepts on `addr` any more.
pub fn wait_closed(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(Instant::now() < deadline, "{what} still listens on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal by name ("TERM", "HUP", "QUIT", "INT", "KILL") to a process.
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{name} {pid} failed");
}

/// Waits for a child to exit, at most `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process {} did not exit within {limit:?}",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A built-in HTTP backend process (`augur backend`), killed on drop.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    child: Child,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Backend::start_with_delay(name, Duration::ZERO)
    }

    pub fn start_with_delay(name: &str, delay: Duration) -> Backend {
        Backend::start_at(name, SocketAddr::from(([127, 0, 0, 1], free_port())), delay)
    }

    /// A backend on a given address (a restart on the address a killed one had).
    pub fn start_at(name: &str, addr: SocketAddr, delay: Duration) -> Backend {
        let child = Command::new(AUGUR)
            .args(["backend", "--listen", &addr.to_string(), "--name", name])
            .args(["--delay", &format!("{}ms", delay.as_millis())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn backend");
        wait_listening(addr, name);
        Backend {
            addr,
            name: name.to_owned(),
            child,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running augur process with its own directory, config file and admin listener.
pub struct Augur {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub admin: SocketAddr,
    pub child: Child,
}

impl Augur {
    /// Writes the config (a `server:` and `admin:` section are added in front of `body`),
    /// starts `augur run`, and waits for the admin listener and every `ready` address.
    pub fn start(test: &str, body: &str, ready: &[SocketAddr]) -> Augur {
        Self::start_with(test, |_| String::new(), body, ready)
    }

    /// Like `start`, with extra `server:` keys (indented two spaces) made from the test's dir.
    pub fn start_with(
        test: &str,
        server_extra: impl Fn(&Path) -> String,
        body: &str,
        ready: &[SocketAddr],
    ) -> Augur {
        let dir = temp_dir(test);
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = dir.join("augur.yaml");
        let text = Self::full_config(&dir, admin, body).replacen(
            "admin:",
            &format!("{}admin:", server_extra(&dir)),
            1,
        );
        std::fs::write(&config, text).expect("write config");
        let child = Self::spawn(&dir, &config, false);
        let mut augur = Augur {
            dir,
            config,
            admin,
            child,
        };
        augur.wait_ready(ready);
        augur
    }

    pub fn full_config(dir: &Path, admin: SocketAddr, body: &str) -> String {
        format!(
            "server:\n  grace_period: 5s\n  upgrade_sock: {}\n  pid_file: {}\n  log_level: info\nadmin:\n  bind: {admin}\n{body}",
            dir.join("upgrade.sock").display(),
            dir.join("augur.pid").display(),
        )
    }

    /// Starts `augur run` on `config`, logging to a file in `dir`.
    pub fn spawn(dir: &Path, config: &Path, upgrade: bool) -> Child {
        let log_name = if upgrade {
            "augur-upgrade.log"
        } else {
            "augur.log"
        };
        let log = std::fs::File::create(dir.join(log_name)).expect("log file");
        let mut cmd = Command::new(AUGUR);
        cmd.arg("run").arg("-c").arg(config);
        if upgrade {
            cmd.arg("--upgrade");
        }
        cmd.stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .expect("spawn augur")
    }

    /// Waits until the admin listener answers `/status` and every address in `ready` accepts.
    pub fn wait_ready(&mut self, ready: &[SocketAddr]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("augur exited early ({status}); log:\n{}", self.log());
            }
            if let Ok(r) = try_request(self.admin, "GET", "/status", "localhost", &[], b"") {
                if r.status == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "augur never became ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for addr in ready {
            wait_listening(*addr, "augur listener");
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replaces the config body (keeping the same server and admin sections).
    pub fn write_config(&self, body: &str) {
        std::fs::write(&self.config, Self::full_config(&self.dir, self.admin, body))
            .expect("write config");
    }

    /// `POST /reload` on the admin listener.
    pub fn reload(&self) -> Response {
        request(self.admin, "POST", "/reload", "localhost", &[], b"")
    }

    /// `GET /status` parsed as JSON.
    pub fn status(&self) -> serde_json::Value {
        let r = request(self.admin, "GET", "/status", "localhost", &[], b"");
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).expect("status is JSON")
    }

    /// `GET /metrics` as text.
    pub fn metrics(&self) -> String {
        let r = request(self.admin, "GET", "/metrics", "localhost", &[], b"");
        assert_eq!(r.status, 200);
        String::from_utf8(r.body).expect("metrics are text")
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("augur.log")).unwrap_or_default()
    }
}

impl Drop for Augur {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

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
    try_request(addr, method, path, host, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

/// `GET path` with `Host: host` on a new connection.
pub fn get(addr: SocketAddr, host: &str, path: &str) -> Response {
    request(addr, "GET", path, host, &[], b"")
}

/// One request on a new connection.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    conn.write_all(head.as_bytes())?;
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

/// A TCP echo server on loopback, for the L4 relay tests; runs until the test process ends.
pub fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 16384];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// Runs `augur` with arguments and returns (exit code, stdout, stderr).
pub fn augur_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(AUGUR).args(args).output().expect("run augur");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Which backend answered (from the `x-backend` header).
pub fn backend_of(r: &Response) -> String {
    r.header("x-backend").unwrap_or("").to_owned()
}

/// A request loop on its own thread: GETs on new connections until stopped; returns the
/// number of successes and the failures (status or error) it saw.
pub struct RequestLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl RequestLoop {
    pub fn start(addr: SocketAddr, path: &'static str) -> RequestLoop {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut ok = 0;
            let mut failures = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match try_request(addr, "GET", path, "localhost", &[], b"") {
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

    pub fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("request loop panicked")
    }
}

/// Polls `probe` until it returns `Some`, for figures recorded after a response is sent
/// (counters are updated in the request's logging step, just after the client has its reply).
pub fn eventually<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    eventually_within(Duration::from_secs(10), what, probe)
}

/// `eventually` with its own deadline.
pub fn eventually_within<T>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The most common test config: one HTTP listener on `addr` routing everything to upstream
/// `u` with these backends; `settings` are extra upstream keys (`"policy: round_robin, "`).
pub fn one_upstream(addr: SocketAddr, settings: &str, backends: &[SocketAddr]) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr: {b} }}"))
        .collect();
    format!(
        "listeners:\n  - {{ name: web, bind: {addr}, protocol: http, routes: [ {{ upstream: u }} ] }}\n\
         upstreams:\n  - {{ name: u, {settings}backends: [ {} ] }}\n",
        list.join(", ")
    )
}

/// Runs `program args` with `input` on stdin: (exit code, stdout trimmed, stderr).
pub fn run_with_stdin(program: &str, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (the test command installs wireguard-tools)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends `payload` on a new connection to `addr` (an echo behind it) while reading what comes
/// back, half-closes, and returns everything read until the far end closes.
pub fn echo_round_trip(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).unwrap();
    let mut reader = conn.try_clone().unwrap();
    let expected = payload.len();
    let reading = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(expected);
        reader.read_to_end(&mut got).unwrap();
        got
    });
    conn.write_all(payload).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    reading.join().unwrap()
}
