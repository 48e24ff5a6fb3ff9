//! Assembles a Pingora server from a validated config and runs it: listeners, admin, the
//! supervised background services, and the ordered stop: the listeners drain, then the
//! background services stop, the access log is flushed, and `run` returns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{
    ExecutionPhase, ListenFds, RunArgs, RuntimeOpts, Server, ShutdownSignal, ShutdownSignalWatch,
    ShutdownWatch,
};
use pingora::services::listening::Service;
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};
use tokio::runtime::Runtime as TokioRuntime;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::broadcast;

use augur_config::{Config, ListenerKind};

use crate::access_log::AccessLog;
use crate::admin::Admin;
use crate::http_proxy::HttpProxy;
use crate::reload::reload;
use crate::revocation::Revocable;
use crate::runtime::{ConfigVersion, Runtime};
use crate::segment_gate::SegmentGate;
use crate::services;
use crate::state::Shared;
use crate::tcp_relay::TcpRelay;

/// What to start.
pub struct Launch {
    /// The validated config.
    pub config: Config,
    /// Content hash of the config text.
    pub hash: String,
    /// The file reloads read (`None` for the built-in demo).
    pub config_path: Option<PathBuf>,
    /// Take listening sockets over from a running instance instead of binding them.
    pub upgrade: bool,
    /// Extra services to run in the same server, as (name, address, the service listening
    /// there): the demo's backends.
    pub extra: Vec<(String, SocketAddr, Box<dyn ServiceWithDependents>)>,
}

/// Longest wait for each background service to stop once the listeners have drained.
const STOP_WITHIN: Duration = Duration::from_secs(1);

/// Runs augur until it is told to stop and has stopped in order.
pub fn run(launch: Launch) -> anyhow::Result<()> {
    let config = launch.config;
    crate::logging::init(&config.server.log_level);

    if !launch.upgrade {
        let mut binds: Vec<(String, SocketAddr)> = config
            .listeners
            .iter()
            .map(|l| (format!("listener {}", l.name), l.bind))
            .collect();
        if let Some(admin) = &config.admin {
            binds.push(("admin".into(), admin.bind));
        }
        binds.extend(launch.extra.iter().map(|(n, a, _)| (n.clone(), *a)));
        check_binds(&binds)?;
    }

    let (access_log, log_writer) = match &config.server.access_log {
        Some(a) => {
            let (log, writer) = AccessLog::open(&a.path, a.format)
                .with_context(|| format!("cannot open access log {}", a.path.display()))?;
            (Some(log), Some(writer))
        }
        None => (None, None),
    };
    write_pid_file(&config.server.pid_file);

    let mut conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: config.server.upgrade_sock.display().to_string(),
        pid_file: config.server.pid_file.display().to_string(),
        ..ServerConf::default()
    };
    // One worker has nothing to steal from; the plain per-thread runtime measured cheaper
    // (benches/RESULTS.md). With more workers keep Pingora's work-stealing default.
    conf.work_stealing = config.server.threads > 1;
    // Pingora's own retry cap; ours (per upstream) is always lower.
    conf.max_retries = 16;
    let opt = Opt {
        upgrade: launch.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let slots: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
    let predictor_settings = config.predictor.clone();
    let listeners = config.listeners.clone();
    let admin = config.admin.clone();
    let grace = config.server.grace_period;
    let version = ConfigVersion {
        hash: launch.hash,
        loaded_at: SystemTime::now(),
        generation: 1,
    };
    let registry = crate::runtime::BackendRegistry::default();
    let tunnels = crate::tunnel::Tunnels::start(&config.tunnels)?;
    let runtime = Runtime::build(config, version, None, &slots, &registry, &tunnels);
    let shared = Shared::new(
        runtime,
        registry,
        tunnels,
        launch.config_path,
        slots,
        access_log,
    );

    let server_conf = Arc::clone(&server.configuration);
    let mut services: Vec<Box<dyn ServiceWithDependents>> = Vec::new();
    for (slot, listener) in listeners.iter().enumerate() {
        let bind = listener.bind.to_string();
        match &listener.kind {
            ListenerKind::Http { .. } => {
                let proxy = HttpProxy::new(Arc::clone(&shared), slot, false);
                let app = pingora::proxy::http_proxy(&server_conf, proxy);
                let mut svc = Service::new(
                    listener.name.clone(),
                    Revocable::new(app, Arc::clone(&shared), slot),
                );
                svc.set_connection_filter(gate(&shared, slot, false));
                svc.add_tcp(&bind);
                services.push(Box::new(svc));
            }
            ListenerKind::Https { tls, .. } => {
                let proxy = HttpProxy::new(Arc::clone(&shared), slot, true);
                let app = pingora::proxy::http_proxy(&server_conf, proxy);
                let mut svc = Service::new(
                    listener.name.clone(),
                    Revocable::new(app, Arc::clone(&shared), slot),
                );
                let mut settings = TlsSettings::intermediate(
                    &tls.cert.display().to_string(),
                    &tls.key.display().to_string(),
                )
                .with_context(|| format!("listener {}: TLS settings", listener.name))?;
                settings.enable_h2();
                // Before the handshake: a denied source never gets a TLS byte.
                svc.set_connection_filter(gate(&shared, slot, false));
                svc.add_tls_with_settings(&bind, None, settings);
                services.push(Box::new(svc));
            }
            ListenerKind::Tcp { .. } => {
                let mut svc = Service::new(
                    listener.name.clone(),
                    TcpRelay::new(Arc::clone(&shared), slot),
                );
                // At accept, before the relay's task exists; learn mode records the flow
                // here since a TCP session has no request to record it with.
                svc.set_connection_filter(gate(&shared, slot, true));
                svc.add_tcp(&bind);
                services.push(Box::new(svc));
            }
        }
    }
    if let Some(admin) = admin {
        let mut svc = Service::new("admin".to_owned(), Admin::new(Arc::clone(&shared)));
        svc.add_tcp(&admin.bind.to_string());
        services.push(Box::new(svc));
    }
    services.extend(launch.extra.into_iter().map(|(_, _, service)| service));
    let accepting = Arc::new(AtomicUsize::new(0));
    server.add_services(
        services
            .into_iter()
            .map(|s| Box::new(Accepting::new(s, &accepting)) as Box<dyn ServiceWithDependents>)
            .collect(),
    );

    let sighup = reload_on_sighup(Arc::clone(&shared))?;
    let peers = crate::peers::spawn(
        Arc::clone(&shared.routing),
        Arc::clone(&shared.feedback.peers),
    )
    .context("start the peers service")?;
    let (predictor, scale_hook) = crate::predictor_thread::spawn(
        Arc::clone(&shared.routing),
        Arc::clone(&shared.feedback),
        &predictor_settings,
    )
    .context("start the predictor service")?;
    let health =
        crate::health::spawn(Arc::clone(&shared.routing)).context("start the health service")?;
    // The order they stop in: what feeds the predictor first, the predictor, then what it
    // feeds; the access log last, so that it has every line of the drain.
    let background: Vec<services::Service> = [peers, health, predictor, scale_hook, sighup]
        .into_iter()
        .chain(log_writer)
        .collect();
    for service in &background {
        shared.services.register(service);
    }
    let phases = server.watch_execution_phase();
    tracing::info!(
        listeners = listeners.len(),
        upgrade = launch.upgrade,
        "augur starting"
    );
    let signals = Box::new(Signals {
        shared: Arc::clone(&shared),
    });
    // Pingora's `run` sleeps out the whole grace period before it returns; on a thread of its
    // own it cannot hold up the end of the drain, which this thread watches.
    let pingora = std::thread::Builder::new()
        .name("augur-server".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: signals,
            })
        })
        .context("start the server thread")?;
    drain(&shared, &accepting, phases, grace);
    for service in background {
        service.stop(STOP_WITHIN);
    }
    shared.routing.tunnels.remove_endpoints();
    if pingora.is_finished() && pingora.join().is_err() {
        bail!("the Pingora server panicked");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The segment gate of listener `slot`, as Pingora's accept loop takes it.
fn gate(
    shared: &Arc<Shared>,
    slot: usize,
    learn_at_accept: bool,
) -> Arc<dyn pingora::listeners::ConnectionFilter> {
    Arc::new(SegmentGate::new(Arc::clone(shared), slot, learn_at_accept))
}

/// Binds every address once and releases it, so that a taken port fails the start with a
/// clear message (Pingora would otherwise panic inside a service task and keep running).
fn check_binds(binds: &[(String, SocketAddr)]) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (what, addr) in binds {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            problems.push(format!("{what}: cannot listen on {addr}: {e}"));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

fn write_pid_file(path: &std::path::Path) {
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the pid file");
    }
}

/// Starts the service that reloads the config on every SIGHUP. The handler is installed before
/// this returns, so a SIGHUP sent once the process is serving never kills it.
fn reload_on_sighup(shared: Arc<Shared>) -> anyhow::Result<services::Service> {
    let mut first = Some(listen_for_hangup()?);
    let service = services::Service::start("sighup", move |stop| {
        let (rt, mut hup) = match first.take() {
            Some(installed) => installed,
            None => listen_for_hangup()?,
        };
        services::until_stopped(&rt, stop, async {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading");
                let _ = reload(&shared);
            }
        });
        Ok(())
    })
    .context("start the SIGHUP service")?;
    Ok(service)
}

/// A runtime and, on it, a SIGHUP stream.
fn listen_for_hangup() -> anyhow::Result<(TokioRuntime, Signal)> {
    let rt = services::runtime()?;
    let hup = rt
        .block_on(async { signal(SignalKind::hangup()) })
        .context("installing the SIGHUP handler")?;
    Ok((rt, hup))
}

/// A service counted in `accepting` until its accept loops have stopped and its app has
/// cleaned up, so that the drain never ends the process while a listener can still accept.
struct Accepting {
    service: Box<dyn ServiceWithDependents>,
    accepting: Arc<AtomicUsize>,
}

impl Accepting {
    fn new(service: Box<dyn ServiceWithDependents>, accepting: &Arc<AtomicUsize>) -> Accepting {
        accepting.fetch_add(1, Ordering::Relaxed);
        Accepting {
            service,
            accepting: Arc::clone(accepting),
        }
    }
}

#[async_trait]
impl ServiceWithDependents for Accepting {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        self.service
            .start_service(fds, shutdown, listeners_per_fd, ready_notifier)
            .await;
        self.accepting.fetch_sub(1, Ordering::Relaxed);
    }

    fn name(&self) -> &str {
        self.service.name()
    }

    fn threads(&self) -> Option<usize> {
        self.service.threads()
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        self.service.runtime_opts_override(global)
    }

    fn on_startup_delay(&self, time_waited: Duration) {
        self.service.on_startup_delay(time_waited);
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.service.listen_addresses()
    }
}

/// Pingora's shutdown signals (SIGTERM graceful, SIGINT fast, SIGQUIT upgrade hand-over);
/// a graceful one flags the process as draining (what [`drain`] then waits out).
struct Signals {
    shared: Arc<Shared>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        let sig = tokio::select! {
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
            _ = term.recv() => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::FastShutdown,
        };
        if !matches!(sig, ShutdownSignal::FastShutdown) {
            self.shared
                .lifecycle
                .draining
                .store(true, Ordering::Relaxed);
            tracing::info!(
                upgrade = matches!(sig, ShutdownSignal::GracefulUpgrade),
                "draining"
            );
        } else {
            tracing::info!("SIGINT: stopping now");
        }
        sig
    }
}

/// Waits for a graceful shutdown to start, then (at most `grace`) for the listeners to stop
/// accepting and for every connection they accepted to close. Returns at once when Pingora
/// stops without a grace period (SIGINT).
///
/// Pingora's grace period starts as it tells the listeners to stop, not once they have, and
/// nothing is in flight on a connection accepted a moment before whose request has not been
/// read yet: exiting as soon as nothing is in flight reset such connections. A TLS handshake
/// still under way is not waited for: Pingora has no hook between accept and the app.
fn drain(
    shared: &Shared,
    accepting: &AtomicUsize,
    mut phases: broadcast::Receiver<ExecutionPhase>,
    grace: Duration,
) {
    loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => break,
            Ok(ExecutionPhase::Terminated) | Err(broadcast::error::RecvError::Closed) => return,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
        }
    }
    let deadline = Instant::now() + grace;
    // Polling counters: the request path must not pay for a notification on every request.
    let busy = || {
        accepting.load(Ordering::Relaxed) > 0
            || shared.lifecycle.connections.load(Ordering::Relaxed) > 0
            || shared.lifecycle.in_flight.load(Ordering::Relaxed) > 0
    };
    while busy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(
        in_flight_left = shared.lifecycle.in_flight.load(Ordering::Relaxed),
        connections_left = shared.lifecycle.connections.load(Ordering::Relaxed),
        "drained; stopping"
    );
}
