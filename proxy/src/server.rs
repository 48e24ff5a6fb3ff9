//! Assembles a Pingora server from a validated config and runs it: listeners, admin, SIGHUP
//! reload, and a drain that ends the process as soon as in-flight work is done.

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
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast;

use augur_config::{Config, ListenerKind};

use crate::access_log::AccessLog;
use crate::admin::Admin;
use crate::http_proxy::HttpProxy;
use crate::reload::reload;
use crate::revocation::Revocable;
use crate::runtime::{ConfigVersion, Runtime};
use crate::segment_gate::SegmentGate;
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
    /// Extra services to run in the same server (the demo's backends).
    pub extra: Vec<(String, SocketAddr, crate::demo::backend::DemoBackend)>,
}

/// Runs augur until it is told to stop; returns only on error, otherwise exits the process.
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

    let access_log = match &config.server.access_log {
        Some(a) => Some(
            AccessLog::open(&a.path, a.format)
                .with_context(|| format!("cannot open access log {}", a.path.display()))?,
        ),
        None => None,
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
    for (name, addr, app) in launch.extra {
        let mut svc = Service::new(name, app);
        svc.add_tcp(&addr.to_string());
        services.push(Box::new(svc));
    }
    let accepting = Arc::new(AtomicUsize::new(0));
    server.add_services(
        services
            .into_iter()
            .map(|s| Box::new(Accepting::new(s, &accepting)) as Box<dyn ServiceWithDependents>)
            .collect(),
    );

    reload_on_sighup(Arc::clone(&shared))?;
    crate::peers::spawn(Arc::clone(&shared)).context("start the peers thread")?;
    crate::predictor_thread::spawn(Arc::clone(&shared), &predictor_settings)
        .context("predictor thread")?;
    crate::health::spawn(Arc::clone(&shared))?;
    let phases = server.watch_execution_phase();
    tracing::info!(
        listeners = listeners.len(),
        upgrade = launch.upgrade,
        "augur starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals {
            shared,
            accepting,
            phases: std::sync::Mutex::new(Some(phases)),
            grace,
        }),
    });
    std::process::exit(0)
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

/// Starts a thread that reloads the config on every SIGHUP. The handler is installed before
/// this returns, so a SIGHUP sent once the process is serving never kills it.
fn reload_on_sighup(shared: Arc<Shared>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("SIGHUP runtime")?;
    let mut hup = rt
        .block_on(async { signal(SignalKind::hangup()) })
        .context("installing the SIGHUP handler")?;
    std::thread::Builder::new()
        .name("augur-sighup".into())
        .spawn(move || {
            rt.block_on(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading");
                    let _ = reload(&shared);
                }
            });
        })
        .context("SIGHUP thread")?;
    Ok(())
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

/// Pingora's shutdown signals (SIGTERM graceful, SIGINT fast, SIGQUIT upgrade hand-over),
/// plus augur's drain: once the listeners have closed, exit as soon as every connection they
/// accepted is done instead of always sleeping out the grace period.
struct Signals {
    shared: Arc<Shared>,
    accepting: Arc<AtomicUsize>,
    phases: std::sync::Mutex<Option<broadcast::Receiver<ExecutionPhase>>>,
    grace: Duration,
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
            self.shared.draining.store(true, Ordering::Relaxed);
            let phases = self.phases.lock().ok().and_then(|mut p| p.take());
            if let Some(phases) = phases {
                let shared = Arc::clone(&self.shared);
                let accepting = Arc::clone(&self.accepting);
                let grace = self.grace;
                let _ = std::thread::Builder::new()
                    .name("augur-drain".into())
                    .spawn(move || drain(shared, accepting, phases, grace));
            }
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

/// Waits for the shutdown to start, then (at most `grace`) for the listeners to stop accepting
/// and for every connection they accepted to close, then exits the process.
///
/// Pingora's grace period starts as it tells the listeners to stop, not once they have, and
/// nothing is in flight on a connection accepted a moment before whose request has not been
/// read yet: exiting as soon as nothing is in flight reset such connections. A TLS handshake
/// still under way is not waited for: Pingora has no hook between accept and the app.
fn drain(
    shared: Arc<Shared>,
    accepting: Arc<AtomicUsize>,
    mut phases: broadcast::Receiver<ExecutionPhase>,
    grace: Duration,
) {
    loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => break,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
    let deadline = Instant::now() + grace;
    // Polling counters: the request path must not pay for a notification on every request.
    let busy = || {
        accepting.load(Ordering::Relaxed) > 0
            || shared.connections.load(Ordering::Relaxed) > 0
            || shared.in_flight.load(Ordering::Relaxed) > 0
    };
    while busy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(
        in_flight_left = shared.in_flight.load(Ordering::Relaxed),
        connections_left = shared.connections.load(Ordering::Relaxed),
        "drained; exiting"
    );
    shared.tunnels.remove_endpoints();
    std::process::exit(0);
}
