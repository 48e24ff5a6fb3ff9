//! Test harness: real augur processes, real backend processes, real clients, all on loopback.
//! Readiness is always awaited by connecting, never by sleeping.

#![allow(dead_code)]

mod client;
mod config;
mod poll;
mod prereqs;

pub use client::{
    assert_answered_by, backend_of, get, read_response, request, try_get, RequestLoop, Response,
};
pub use config::{Config, Listener, Route, Tunnel, Upstream};
pub use poll::{eventually, eventually_within, poll_until};
pub use prereqs::{cannot_run, require_namespaces, require_tools};

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The augur binary under test.
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

/// A loopback address on a free port, for a listener the test configures.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A loopback address on a port nothing listens on (connections are refused).
pub fn dead_addr() -> SocketAddr {
    loopback()
}

/// Whether a TCP connection to `addr` is accepted now.
fn accepts(addr: SocketAddr) -> std::io::Result<()> {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map(drop)
}

/// Waits until `addr` accepts a TCP connection.
pub fn wait_listening(addr: SocketAddr, what: &str) {
    wait_accepting(addr, &format!("{what} to listen on {addr}"), true);
}

/// Waits until nothing accepts on `addr` any more.
pub fn wait_closed(addr: SocketAddr, what: &str) {
    wait_accepting(addr, &format!("{what} to stop listening on {addr}"), false);
}

/// Waits until whether `addr` accepts connections is `accepting`.
fn wait_accepting(addr: SocketAddr, what: &str, accepting: bool) {
    let limit = Duration::from_secs(30);
    let _ = eventually_within(limit, what, || accepts(addr), |r| r.is_ok() == accepting);
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
    let what = format!("process {} to exit", child.id());
    let status = || child.try_wait().expect("try_wait");
    eventually_within(limit, &what, status, Option::is_some).expect("exited")
}

/// A built-in HTTP backend process (`augur backend`), killed on drop.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    child: Child,
}

impl Backend {
    /// A backend named `name` on a free loopback port, answering at once.
    pub fn start(name: &str) -> Backend {
        Backend::start_with_delay(name, Duration::ZERO)
    }

    /// A backend that waits `delay` before each answer.
    pub fn start_with_delay(name: &str, delay: Duration) -> Backend {
        Backend::start_at(name, loopback(), delay)
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
    /// Writes `config` (with the harness's `server:` and `admin:` sections), starts
    /// `augur run`, and waits for the admin listener and every listener.
    pub fn start(test: &str, config: &Config) -> Augur {
        Self::start_with_env(test, config, &[])
    }

    /// [`Augur::start`] with extra environment variables for the process.
    pub fn start_with_env(test: &str, config: &Config, env: &[(&str, &str)]) -> Augur {
        let dir = temp_dir(test);
        let admin = loopback();
        let path = dir.join("augur.yaml");
        std::fs::write(&path, config.render(&dir, admin)).expect("write config");
        let mut child = Self::command(&dir, &path, false);
        let child = child
            .envs(env.iter().copied())
            .spawn()
            .expect("spawn augur");
        let mut augur = Augur {
            dir,
            config: path,
            admin,
            child,
        };
        augur.wait_ready(&config.binds());
        augur
    }

    /// Starts `augur run` on `config`, logging to a file in `dir`.
    pub fn spawn(dir: &Path, config: &Path, upgrade: bool) -> Child {
        Self::command(dir, config, upgrade)
            .spawn()
            .expect("spawn augur")
    }

    /// The `augur run` command on `config`, logging to a file in `dir`.
    fn command(dir: &Path, config: &Path, upgrade: bool) -> Command {
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
        cmd.stdout(log.try_clone().expect("log clone")).stderr(log);
        cmd
    }

    /// Starts `augur run --upgrade` on this one's config and waits until the successor listens
    /// on the upgrade socket (it is then ready for SIGQUIT to this one).
    pub fn start_successor(&self) -> Child {
        let mut successor = Self::spawn(&self.dir, &self.config, true);
        let sock = self.dir.join("upgrade.sock");
        let what = format!("the successor to open {}", sock.display());
        let opened = || {
            if let Some(status) = successor.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(self.dir.join("augur-upgrade.log"));
                panic!(
                    "the successor exited early ({status}); log:\n{}",
                    log.unwrap_or_default()
                );
            }
            sock.exists()
        };
        eventually_within(Duration::from_secs(30), &what, opened, |open| *open);
        successor
    }

    /// Waits until the admin listener answers `/status` and every address in `ready` accepts.
    pub fn wait_ready(&mut self, ready: &[SocketAddr]) {
        let (admin, log) = (self.admin, self.dir.join("augur.log"));
        let child = &mut self.child;
        let status = || {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("augur exited early ({status}); log:\n{log}");
            }
            try_get(admin, "/status").map(|r| r.status)
        };
        let ready_in = Duration::from_secs(30);
        if let Err(last) = poll_until(ready_in, status, |s| matches!(s, Ok(200))) {
            panic!(
                "augur's admin listener never answered /status within {ready_in:?} \
                 (last: {last:?}); log:\n{}",
                self.log()
            );
        }
        for addr in ready {
            wait_listening(*addr, "augur listener");
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replaces the config file (keeping the same server and admin sections).
    pub fn write_config(&self, config: &Config) {
        std::fs::write(&self.config, config.render(&self.dir, self.admin)).expect("write config");
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

/// Runs `program args` with `input` on stdin: (exit code, stdout trimmed, stderr).
pub fn run_with_stdin(program: &str, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}", cannot_run(program, &e)));
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
/// back, half-closes, and checks that everything came back intact before the far end closed.
pub fn assert_echoes(addr: SocketAddr, payload: &[u8]) {
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
    let got = reading.join().unwrap();
    assert!(
        got == payload,
        "echo through {addr} damaged: {} bytes back of {} sent",
        got.len(),
        payload.len()
    );
}

/// A self-signed certificate for `localhost` and its key, written to `dir`: (cert, key).
pub fn tls_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let paths = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&paths.0, cert.cert.pem()).expect("write cert");
    std::fs::write(&paths.1, cert.key_pair.serialize_pem()).expect("write key");
    paths
}

/// `curl` for `https://localhost:PORT{path}` (resolved to `addr`) trusting `cert`, with more
/// `args`; its output ends with a line "HTTP_VERSION STATUS".
pub fn curl_https(cert: &Path, addr: SocketAddr, path: &str, args: &[&str]) -> Output {
    let port = addr.port();
    Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(cert)
        .args(args)
        .args(["--resolve", &format!("localhost:{port}:{}", addr.ip())])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap_or_else(|e| panic!("{}", cannot_run("curl", &e)))
}
