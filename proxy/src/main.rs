//! `augur`: an edge load balancer on Pingora.
#![forbid(unsafe_code)]

mod access_log;
mod admin;
mod client;
mod clock;
mod demo;
mod dial;
mod drain;
mod exposition;
mod feedback;
mod health;
mod http_proxy;
mod keys;
mod lifecycle;
mod logging;
mod peers;
mod predictor_thread;
mod reload;
mod revocation;
mod routing;
mod runtime;
mod scale_hook;
mod segment_gate;
mod segment_report;
mod server;
mod services;
mod state;
mod stats;
mod tcp_relay;
mod tunnel;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use client::{Budget, Limits, Request};
use demo::backend;
use runtime::content_hash;

/// How long the CLI waits to connect to the admin listener.
const ADMIN_CONNECT: Duration = Duration::from_secs(2);
/// How long the CLI waits for the admin listener's whole answer (a reload can take a while).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Caps on an admin answer the CLI reads (the learned-segments YAML can be long).
const ADMIN_LIMITS: Limits = Limits {
    head: 16 << 10,
    body: 16 << 20,
};

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
    delay_dist: backend::DelayDist,
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
    fn build(&self, name: &str) -> anyhow::Result<backend::ServiceModel> {
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
                Some(backend::Season {
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
                Some(backend::Stalls {
                    every,
                    jitter,
                    length,
                    seed: backend::name_seed(name),
                })
            }
        };
        Ok(backend::ServiceModel {
            concurrency: self.concurrency,
            dist: self.delay_dist,
            season,
            stalls,
        })
    }
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
        Command::Demo => demo::run(),
        Command::Backend {
            listen,
            name,
            delay,
            model,
        } => model
            .build(&name)
            .and_then(|model| backend::run(listen, name, delay.into(), model)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("augur: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads and validates a config file, and hashes the bytes it parsed.
fn load(path: &Path) -> anyhow::Result<(augur_config::Config, String)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    match augur_config::load_bytes(path, &bytes) {
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

/// The admin listener of the instance that runs the config at `path`, needed `to` do something.
fn admin_of(path: &Path, to: &str) -> anyhow::Result<SocketAddr> {
    let (config, _) = load(path)?;
    let admin = config
        .admin
        .with_context(|| format!("{}: no admin listener {to}", path.display()))?;
    Ok(admin.bind)
}

fn drain_command(
    path: &Path,
    upstream: &str,
    count: Option<usize>,
    backends: Vec<String>,
    on: bool,
) -> anyhow::Result<()> {
    let admin = admin_of(path, "to send the request to")?;
    let body = match (count, backends.is_empty()) {
        (Some(n), _) => serde_json::json!({ "count": n }).to_string(),
        (None, false) => serde_json::json!({ "backends": backends }).to_string(),
        (None, true) => String::new(),
    };
    let verb = if on { "drain" } else { "undrain" };
    let path = format!("/upstreams/{upstream}/{verb}");
    let (ok, reply) = admin_request(admin, &Request::post_json(&path, body.as_bytes()))?;
    println!("{reply}");
    if !ok {
        bail!("{verb} refused");
    }
    Ok(())
}

/// One request to the admin listener; returns whether it answered 200, and the body.
fn admin_request(admin: SocketAddr, request: &Request<'_>) -> anyhow::Result<(bool, String)> {
    let budget = Budget {
        connect: ADMIN_CONNECT,
        total: ADMIN_TIMEOUT,
        limits: ADMIN_LIMITS,
    };
    let response = client::fetch(admin, request, budget)
        .with_context(|| format!("asking the admin listener at {admin}"))?;
    let body = String::from_utf8_lossy(&response.body).trim().to_owned();
    Ok((response.status == 200, body))
}

fn segments_suggest(path: &Path) -> anyhow::Result<()> {
    let admin = admin_of(path, "to ask for the learned segments")?;
    let (ok, reply) = admin_request(admin, &Request::get("/segments/suggest"))?;
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
    let (ok, reply) = admin_request(admin.bind, &Request::post_json("/reload", b""))?;
    println!("{reply}");
    if !ok {
        bail!("reload refused");
    }
    Ok(())
}
