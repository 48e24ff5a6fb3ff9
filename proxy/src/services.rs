//! Supervised background work: every job that runs beside the listeners (predictor, health
//! checks, peers, scale hook, SIGHUP, access log writer) is a [`Service`]: a named thread that
//! runs its body until told to [`Stop`], with a health flag and a restart count.
//!
//! A body that panics or returns an error is logged, counted, flagged `restarting`, and run
//! again after a backoff (100 ms doubling to 5 s; back to 100 ms once a run lasted that long),
//! so a fault in background work never takes the process down and never goes unnoticed:
//! `/status` and `/metrics` show each service's state and restarts. What the request path
//! reads (snapshot, runtime) stays as last published meanwhile.
//!
//! These are threads of their own rather than Pingora `BackgroundService`s: Pingora tells its
//! services to stop as the shutdown starts, while ours must keep running through the drain and
//! stop after it, in order; and the predictor's fixed-rate tick must not share a runtime.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::exposition::{families, Exposition};

/// First wait before a restart.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait before a restart; a run at least this long resets the backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its body is running.
    Running,
    /// Its body failed; it runs again after a backoff.
    Restarting,
    /// It was told to stop and has.
    Stopped,
}

impl State {
    /// The name `/status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Restarting => "restarting",
            State::Stopped => "stopped",
        }
    }
}

/// A service's health flag and restart count, shared with the admin pages.
#[derive(Debug)]
pub struct Health {
    name: &'static str,
    /// The state, and how many restarts so far.
    state: Mutex<(State, u64)>,
    changed: Condvar,
}

impl Health {
    fn new(name: &'static str) -> Health {
        Health {
            name,
            state: Mutex::new((State::Running, 0)),
            changed: Condvar::new(),
        }
    }

    /// Its state now.
    pub fn state(&self) -> State {
        lock(&self.state).0
    }

    /// How often its body failed and was restarted.
    pub fn restarts(&self) -> u64 {
        lock(&self.state).1
    }

    fn set(&self, state: State) {
        lock(&self.state).0 = state;
        self.changed.notify_all();
    }

    /// Counts a failure and flags the service as restarting.
    fn failed(&self) {
        let mut state = lock(&self.state);
        *state = (State::Restarting, state.1 + 1);
        self.changed.notify_all();
    }

    /// Waits until `done` holds for (state, restarts), at most `limit`; returns whether it does.
    fn wait_until(&self, limit: Duration, done: impl Fn(State, u64) -> bool) -> bool {
        let guard = lock(&self.state);
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, limit, |(s, n)| !done(*s, *n))
            .unwrap_or_else(|p| p.into_inner());
        done(guard.0, guard.1)
    }
}

/// A lock that a panic elsewhere does not make unusable (the data are plain values).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tells a service's body to stop: checked, slept on (threads) or awaited (async bodies).
#[derive(Debug)]
pub struct Stop {
    requested: Mutex<bool>,
    wake: Condvar,
    watch: tokio::sync::watch::Sender<bool>,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            requested: Mutex::new(false),
            wake: Condvar::new(),
            watch: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Whether the service has been told to stop.
    pub fn requested(&self) -> bool {
        *lock(&self.requested)
    }

    /// Sleeps `d`, or less if told to stop meanwhile; returns whether it was.
    pub fn sleep(&self, d: Duration) -> bool {
        let requested = lock(&self.requested);
        let (requested, _) = self
            .wake
            .wait_timeout_while(requested, d, |r| !*r)
            .unwrap_or_else(|p| p.into_inner());
        *requested
    }

    /// Resolves once the service is told to stop.
    pub async fn stopped(&self) {
        let mut rx = self.watch.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    fn request(&self) {
        *lock(&self.requested) = true;
        self.wake.notify_all();
        self.watch.send_replace(true);
    }
}

/// A running service: its thread, its stop signal and its health.
pub struct Service {
    health: Arc<Health>,
    stop: Arc<Stop>,
    /// Wakes a body blocked where [`Stop`] cannot reach it (a channel receive).
    on_stop: Option<Box<dyn Fn() + Send>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.health.name)
            .finish()
    }
}

impl Service {
    /// Starts `body` on a thread `augur-NAME`, and runs it again whenever it fails until the
    /// service is stopped. The body returns once `stop` is requested.
    pub fn start(
        name: &'static str,
        mut body: impl FnMut(&Stop) -> anyhow::Result<()> + Send + 'static,
    ) -> std::io::Result<Service> {
        let health = Arc::new(Health::new(name));
        let stop = Arc::new(Stop::new());
        let thread = std::thread::Builder::new()
            .name(format!("augur-{name}"))
            .spawn({
                let (health, stop) = (Arc::clone(&health), Arc::clone(&stop));
                move || supervise(&health, &stop, &mut body)
            })?;
        Ok(Service {
            health,
            stop,
            on_stop: None,
            thread: Some(thread),
        })
    }

    /// Adds what wakes the body when it is told to stop (besides [`Stop`] itself).
    pub fn on_stop(mut self, wake: impl Fn() + Send + 'static) -> Service {
        self.on_stop = Some(Box::new(wake));
        self
    }

    /// The service's health, for the admin pages.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    /// Tells the service to stop and waits for it, at most `limit`; a service that does not
    /// stop in time is logged and left behind (the process is ending).
    pub fn stop(mut self, limit: Duration) {
        self.stop.request();
        if let Some(wake) = &self.on_stop {
            wake();
        }
        if self.health.wait_until(limit, |s, _| s == State::Stopped) {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
            tracing::info!(service = self.health.name, "service stopped");
        } else {
            tracing::warn!(
                service = self.health.name,
                ?limit,
                "service did not stop in time"
            );
        }
    }
}

/// Runs `body` until stop is requested, restarting it after each failure.
fn supervise(
    health: &Health,
    stop: &Stop,
    body: &mut (impl FnMut(&Stop) -> anyhow::Result<()> + ?Sized),
) {
    let name = health.name;
    let mut backoff = BACKOFF_MIN;
    while !stop.requested() {
        health.set(State::Running);
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| body(stop)));
        if stop.requested() {
            break;
        }
        match outcome {
            Ok(Ok(())) => tracing::error!(service = name, "service ended by itself"),
            Ok(Err(error)) => {
                tracing::error!(service = name, error = %format!("{error:#}"), "service failed")
            }
            Err(panic) => {
                tracing::error!(
                    service = name,
                    panic = panic_message(&*panic),
                    "service panicked"
                )
            }
        }
        health.failed();
        if started.elapsed() >= BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tracing::info!(service = name, ?backoff, "restarting service");
        if stop.sleep(backoff) {
            break;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    health.set(State::Stopped);
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

/// A single-threaded runtime for an async body, apart from Pingora's.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build a runtime")
}

/// Runs `job` on `rt` until it ends or the service is told to stop.
pub fn until_stopped(rt: &tokio::runtime::Runtime, stop: &Stop, job: impl Future<Output = ()>) {
    rt.block_on(async {
        tokio::select! {
            () = job => {}
            () = stop.stopped() => {}
        }
    });
}

families! {
    /// 1 while a background service runs, 0 while it restarts or once it has stopped.
    SERVICE_UP: Gauge augur_service_up{service};
    /// Times a background service failed (panic or error) and was restarted.
    SERVICE_RESTARTS: Counter augur_service_restarts_total{service};
}

/// Every service's health, in start order, for `/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct Services {
    list: Mutex<Vec<Arc<Health>>>,
}

impl Services {
    /// Lists a started service.
    pub fn register(&self, service: &Service) {
        lock(&self.list).push(service.health());
    }

    /// The health of the service called `name`, if it was started.
    pub fn get(&self, name: &str) -> Option<Arc<Health>> {
        lock(&self.list).iter().find(|h| h.name == name).cloned()
    }

    /// Every service for `/status`: name, state, restarts.
    pub fn status(&self) -> Value {
        lock(&self.list)
            .iter()
            .map(|h| json!({"name": h.name, "state": h.state().as_str(), "restarts": h.restarts()}))
            .collect()
    }

    /// Writes the services' families of `/metrics`.
    pub fn metrics(&self, doc: &mut Exposition) {
        let list = lock(&self.list);
        doc.family(&SERVICE_UP, |s| {
            for h in list.iter() {
                s.sample([h.name], h.state() == State::Running);
            }
        });
        doc.family(&SERVICE_RESTARTS, |s| {
            for h in list.iter() {
                s.sample([h.name], h.restarts());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::mpsc::channel;

    const LIMIT: Duration = Duration::from_secs(10);

    /// Waits (at most `LIMIT`) until `health` is in `state` with at least `restarts`.
    fn wait_for(health: &Health, state: State, restarts: u64) {
        let reached = health.wait_until(LIMIT, |s, n| s == state && n >= restarts);
        assert!(
            reached,
            "{} never became {state:?} after {restarts} restarts",
            health.name
        );
    }

    #[test]
    fn a_body_that_panics_twice_is_restarted_and_then_runs() {
        let runs = Arc::new(AtomicU32::new(0));
        let (running, seen) = channel();
        let service = Service::start("flaky", {
            let runs = Arc::clone(&runs);
            move |stop| {
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("injected");
                }
                let _ = running.send(());
                while !stop.sleep(Duration::from_secs(60)) {}
                Ok(())
            }
        })
        .unwrap();
        seen.recv_timeout(LIMIT).expect("third run started");
        let health = service.health();
        assert_eq!(health.state(), State::Running);
        assert_eq!(health.restarts(), 2);
        service.stop(LIMIT);
        assert_eq!(health.state(), State::Stopped);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_error_counts_like_a_panic() {
        let service = Service::start("failing", |_| anyhow::bail!("no")).unwrap();
        let health = service.health();
        wait_for(&health, State::Restarting, 1);
        service.stop(LIMIT);
        assert_eq!(health.state(), State::Stopped);
    }

    #[test]
    fn stop_while_running_wakes_a_sleeping_body() {
        let service = Service::start("sleeper", |stop| {
            stop.sleep(Duration::from_secs(3600));
            Ok(())
        })
        .unwrap();
        let health = service.health();
        let started = Instant::now();
        service.stop(LIMIT);
        assert_eq!(health.state(), State::Stopped);
        assert_eq!(health.restarts(), 0);
        assert!(started.elapsed() < LIMIT);
    }

    #[test]
    fn stop_while_backing_off_does_not_run_the_body_again() {
        let runs = Arc::new(AtomicU32::new(0));
        let service = Service::start("dead", {
            let runs = Arc::clone(&runs);
            move |_| {
                runs.fetch_add(1, Ordering::SeqCst);
                panic!("always");
            }
        })
        .unwrap();
        let health = service.health();
        // After the fifth failure the backoff is 1.6 s: time enough to stop within it.
        wait_for(&health, State::Restarting, 5);
        let started = Instant::now();
        service.stop(LIMIT);
        assert_eq!(health.state(), State::Stopped);
        // Stopped during a backoff (1.6 s after the fifth run; a sixth only if this thread
        // stalled that long), and within it rather than after it.
        let runs_at_stop = runs.load(Ordering::SeqCst);
        assert!(runs_at_stop >= 5, "{runs_at_stop}");
        assert!(started.elapsed() < BACKOFF_MAX);
    }

    #[test]
    fn an_async_body_stops_when_told() {
        let service = Service::start("async", |stop| {
            let rt = runtime()?;
            until_stopped(&rt, stop, std::future::pending());
            Ok(())
        })
        .unwrap();
        let health = service.health();
        service.stop(LIMIT);
        assert_eq!(health.state(), State::Stopped);
    }

    #[test]
    fn status_and_metrics_list_every_service() {
        let services = Services::default();
        let service = Service::start("idle", |stop| {
            stop.sleep(Duration::from_secs(3600));
            Ok(())
        })
        .unwrap();
        services.register(&service);
        assert_eq!(services.status()[0]["name"], "idle");
        let mut doc = Exposition::new();
        services.metrics(&mut doc);
        let text = doc.finish();
        assert!(
            text.contains("augur_service_restarts_total{service=\"idle\"} 0"),
            "{text}"
        );
        service.stop(LIMIT);
        assert_eq!(services.status()[0]["state"], "stopped");
    }
}
