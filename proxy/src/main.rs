//! `augur`: an edge load balancer on Pingora.
#![forbid(unsafe_code)]

mod access_log;
mod admin;
mod backend_app;
mod clock;
mod demo;
mod dial;
mod drain;
mod exposition;
mod health;
mod health_report;
mod http_proxy;
mod keys;
mod logging;
mod peers;
mod predictor_thread;
mod reload;
mod revocation;
mod runtime;
mod scale_hook;
mod segment_gate;
mod segment_report;
mod server;
mod state;
mod stats;
mod tcp_relay;
mod tunnel;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;

use backend_app::DemoBackend;
use runtime::content_hash;

const DEMO_CONFIG: &str = include_str!("../../examples/demo.yaml");
const DEMO_BACKENDS: [(&str, &str, u64); 3] = [
    ("demo-1", "127.0.0.1:9001", 5),
    ("demo-2", "127.0.0.1:9002", 5),
    ("demo-3", "127.0.0.1:9003", 5),
];

/// augur: an edge load balancer (L4 TCP, L7 HTTP/HTTPS) built on Pingora.
#[derive(Parser)]
#[command(name = "augur", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy in the foreground.
    Run {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Start as the successor of a running instance: take over its listening sockets
        /// (then send the old process SIGQUIT).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file: print `ok`, or every problem as FILE:LINE:COL: path: message.
    Check {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate the config file, then ask the running instance to reload it (POST /reload on
    /// the admin listener, or SIGHUP to the pid in `server.pid_file` without one). An invalid
    /// file is reported here and the running instance is not disturbed.
    Reload {
        /// The running instance's config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Drain backends of an upstream for a rolling update: no new requests go to them.
    Drain {
        /// The running instance's config file (for its admin address).
        #[arg(short, long)]
        config: PathBuf,
        /// Upstream name.
        #[arg(long)]
        upstream: String,
        /// How many backends to drain (those with the lowest predicted load).
        #[arg(long, conflicts_with = "backend")]
        count: Option<usize>,
        /// A backend address to drain (repeatable).
        #[arg(long)]
        backend: Vec<String>,
    },
    /// Put drained backends of an upstream back into rotation (all, or those named).
    Undrain {
        /// The running instance's config file (for its admin address).
        #[arg(short, long)]
        config: PathBuf,
        /// Upstream name.
        #[arg(long)]
        upstream: String,
        /// A backend address to undrain (repeatable; none = all).
        #[arg(long)]
        backend: Vec<String>,
    },
    /// Micro-segmentation: what the running instance has learned.
    Segments {
        #[command(subcommand)]
        command: SegmentsCommand,
    },
    /// Print a new WireGuard private key (base64, as `wg genkey` writes it).
    Keygen,
    /// Read a WireGuard private key on stdin and print its public key (as `wg pubkey`).
    Pubkey,
    /// Run augur on 127.0.0.1:8080 in front of three built-in demo backends.
    Demo,
    /// Run one built-in HTTP backend (the demo's; also used by the tests).
    #[command(hide = true)]
    Backend {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Name reported in every reply.
        #[arg(long, default_value = "backend")]
        name: String,
        /// Delay before every reply (humantime, e.g. 5ms); the mean service time.
        #[arg(long, default_value = "0ms")]
        delay: humantime::Duration,
        #[command(flatten)]
        model: BackendModel,
    },
}

#[derive(Subcommand)]
enum SegmentsCommand {
    /// Print the `segments:` + `allow:` YAML that would admit exactly the traffic listeners in
    /// `segment_mode: learn` have seen so far (GET /segments/suggest on the admin listener).
    Suggest {
        /// The running instance's config file (for its admin address).
        #[arg(short, long)]
        config: PathBuf,
    },
}

/// Flags of `augur backend` that make it model a real service (for the loopback benchmark).
#[derive(clap::Args)]
struct BackendModel {
    /// Serve at most this many requests at once; the rest wait in a queue.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Distribution of service times: mean = --delay, standard deviation = mean.
    #[arg(long, value_enum, default_value = "fixed")]
    delay_dist: backend_app::DelayDist,
    /// Seasonal slowdown: cycle length (off unless given).
    #[arg(long)]
    degrade_period: Option<humantime::Duration>,
    /// Slow part of each cycle.
    #[arg(long, default_value = "10s")]
    degrade_length: humantime::Duration,
    /// Service-time multiplier while slow.
    #[arg(long, default_value_t = 2.5)]
    degrade_factor: f64,
    /// Where in each cycle (counted from the Unix epoch) the slow part starts.
    #[arg(long, default_value = "0s")]
    degrade_phase: humantime::Duration,
    /// Stalls: mean distance between them (off unless given).
    #[arg(long)]
    stall_every: Option<humantime::Duration>,
    /// Largest random shift of each stall away from its slot.
    #[arg(long, default_value = "0s")]
    stall_jitter: humantime::Duration,
    /// How long each stall lasts (nothing completes meanwhile).
    #[arg(long, default_value = "200ms")]
    stall: humantime::Duration,
}

impl BackendModel {
    /// Check the flags and build the service model; `name` seeds the stall jitter.
    fn build(&self, name: &str) -> anyhow::Result<backend_app::ServiceModel> {
        if self.concurrency == Some(0) {
            bail!("--concurrency: expected at least 1, found 0");
        }
        let season = match self.degrade_period {
            None => None,
            Some(period) => {
                let (period, length) =
                    (Duration::from(period), Duration::from(self.degrade_length));
                if period.is_zero() || length > period {
                    bail!("--degrade-length ({length:?}) must fit in a non-zero --degrade-period ({period:?})");
                }
                if !self.degrade_factor.is_finite() || self.degrade_factor < 0.0 {
                    bail!(
                        "--degrade-factor: expected a finite number >= 0, found {}",
                        self.degrade_factor
                    );
                }
                Some(backend_app::Season {
                    period,
                    length,
                    factor: self.degrade_factor,
                    phase: self.degrade_phase.into(),
                })
            }
        };
        let stalls = match self.stall_every {
            None => None,
            Some(every) => {
                let every = Duration::from(every);
                let (jitter, length) = (
                    Duration::from(self.stall_jitter),
                    Duration::from(self.stall),
                );
                if 2 * jitter + length >= every {
                    bail!("--stall-every ({every:?}) must exceed 2 × --stall-jitter + --stall ({jitter:?}, {length:?})");
                }
                Some(backend_app::Stalls {
                    every,
                    jitter,
                    length,
                    seed: name_seed(name),
                })
            }
        };
        Ok(backend_app::ServiceModel {
            concurrency: self.concurrency,
            dist: self.delay_dist,
            season,
            stalls,
        })
    }
}

/// FNV-1a of a backend's name: a stable per-backend seed.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, upgrade } => run(&config, upgrade),
        Command::Check { config } => return check(&config),
        Command::Reload { config } => reload_running(&config),
        Command::Drain {
            config,
            upstream,
            count,
            backend,
        } => drain_command(&config, &upstream, count, backend, true),
        Command::Undrain {
            config,
            upstream,
            backend,
        } => drain_command(&config, &upstream, None, backend, false),
        Command::Segments {
            command: SegmentsCommand::Suggest { config },
        } => segments_suggest(&config),
        Command::Keygen => keys::generate()
            .map(|key| println!("{key}"))
            .map_err(anyhow::Error::from),
        Command::Pubkey => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(anyhow::Error::from)
                .and_then(|_| keys::public_of(&text).map_err(anyhow::Error::from))
                .map(|public| println!("{public}"))
        }
        Command::Demo => demo(),
        Command::Backend {
            listen,
            name,
            delay,
            model,
        } => model
            .build(&name)
            .and_then(|model| backend(listen, name, delay.into(), model)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("augur: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<(augur_config::Config, String)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    match augur_config::load(path) {
        Ok(config) => Ok((config, content_hash(&bytes))),
        Err(errors) => bail!("invalid config:\n{errors}"),
    }
}

fn run(path: &Path, upgrade: bool) -> anyhow::Result<()> {
    let (config, hash) = load(path)?;
    let config_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    server::run(server::Launch {
        config,
        hash,
        config_path: Some(config_path),
        upgrade,
        extra: Vec::new(),
    })
}

fn check(path: &Path) -> ExitCode {
    match augur_config::load(path) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn drain_command(
    path: &Path,
    upstream: &str,
    count: Option<usize>,
    backends: Vec<String>,
    on: bool,
) -> anyhow::Result<()> {
    let (config, _) = load(path)?;
    let admin = config.admin.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no admin listener to send the request to",
            path.display()
        )
    })?;
    let body = match (count, backends.is_empty()) {
        (Some(n), _) => serde_json::json!({ "count": n }).to_string(),
        (None, false) => serde_json::json!({ "backends": backends }).to_string(),
        (None, true) => String::new(),
    };
    let verb = if on { "drain" } else { "undrain" };
    let (ok, reply) = admin_post(admin.bind, &format!("/upstreams/{upstream}/{verb}"), &body)?;
    println!("{reply}");
    if !ok {
        bail!("{verb} refused");
    }
    Ok(())
}

/// POSTs `body` to the admin listener; returns whether it answered 200, and the body.
fn admin_post(admin: SocketAddr, path: &str, body: &str) -> anyhow::Result<(bool, String)> {
    admin_request(admin, "POST", path, body)
}

/// One request to the admin listener; returns whether it answered 200, and the body.
fn admin_request(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(bool, String)> {
    let mut conn = TcpStream::connect_timeout(&admin, Duration::from_secs(2))
        .with_context(|| format!("cannot reach the admin listener at {admin}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    Ok((head.starts_with("HTTP/1.1 200"), body.trim().to_owned()))
}

fn segments_suggest(path: &Path) -> anyhow::Result<()> {
    let (config, _) = load(path)?;
    let admin = config.admin.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no admin listener to ask for the learned segments",
            path.display()
        )
    })?;
    let (ok, reply) = admin_request(admin.bind, "GET", "/segments/suggest", "")?;
    if !ok {
        bail!("the admin listener refused: {reply}");
    }
    println!("{reply}");
    Ok(())
}

fn reload_running(path: &Path) -> anyhow::Result<()> {
    let (config, _) = load(path)?;
    let Some(admin) = config.admin else {
        let pid = std::fs::read_to_string(&config.server.pid_file).with_context(|| {
            format!(
                "no admin listener, and cannot read {}",
                config.server.pid_file.display()
            )
        })?;
        let status = std::process::Command::new("kill")
            .args(["-HUP", pid.trim()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("could not signal pid {}", pid.trim());
        }
        println!("SIGHUP sent to {}", pid.trim());
        return Ok(());
    };
    let (ok, reply) = admin_post(admin.bind, "/reload", "")?;
    println!("{reply}");
    if !ok {
        bail!("reload refused");
    }
    Ok(())
}

fn demo() -> anyhow::Result<()> {
    let config = augur_config::parse(DEMO_CONFIG, "examples/demo.yaml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "augur demo: proxy on http://127.0.0.1:8080, admin on http://127.0.0.1:9901
backends demo-1/2/3 on 127.0.0.1:9001-9003 answer in 5 ms; demo-3 takes 60 ms more for the
last 10 s of every 30 s. A built-in load sends {} requests/s; policy: predictive.
Watch the table: once the predictor has seen two cycles (about a minute) it expects
demo-3's slow phase and moves traffic away as it starts.

try:
  curl -s http://127.0.0.1:8080/hello
  wrk -t1 -c16 -d10s http://127.0.0.1:8080/
  curl -s http://127.0.0.1:9901/status
  curl -s http://127.0.0.1:9901/metrics
Ctrl-C stops it.",
        demo::LOAD_PER_SECOND
    );
    let started = std::time::Instant::now();
    let extra = DEMO_BACKENDS
        .iter()
        .map(|(name, addr, ms)| {
            let addr: SocketAddr = addr.parse().expect("demo backend address is valid");
            let mut backend = DemoBackend::new(*name, Duration::from_millis(*ms));
            if *name == "demo-3" {
                backend = backend.degrading(backend_app::Degradation {
                    period: Duration::from_secs(30),
                    length: Duration::from_secs(10),
                    extra: Duration::from_millis(60),
                    since: started,
                });
            }
            ((*name).to_owned(), addr, backend)
        })
        .collect();
    let proxy: SocketAddr = "127.0.0.1:8080".parse().expect("valid address");
    let admin: SocketAddr = "127.0.0.1:9901".parse().expect("valid address");
    demo::start(proxy, admin);
    server::run(server::Launch {
        config,
        hash: content_hash(DEMO_CONFIG.as_bytes()),
        config_path: None,
        upgrade: false,
        extra,
    })
}

fn backend(
    listen: SocketAddr,
    name: String,
    delay: Duration,
    model: backend_app::ServiceModel,
) -> anyhow::Result<()> {
    logging::init("warn");
    std::net::TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        upgrade_sock: format!("/tmp/augur_backend_{}.sock", listen.port()),
        pid_file: format!("/tmp/augur_backend_{}.pid", listen.port()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let seed = name_seed(&name);
    let app = DemoBackend::new(name.clone(), delay).modelled(model, seed);
    let mut svc = Service::new(name, app);
    svc.add_tcp(&listen.to_string());
    server.add_service(svc);
    server.run_forever()
}
