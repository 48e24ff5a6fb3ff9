//! `listeners:`: names, addresses, protocols, routes, segments and what each protocol
//! allows.

use std::net::SocketAddr;
use std::time::Duration;

use super::names::Names;
use super::segments::{segment_mode, SegmentNames};
use super::upstreams::UpstreamNames;
use super::{defaults, overlaps, CheckedListeners, Checks};
use crate::issue::quoted;
use crate::model::{Listener, ListenerKind, Route};
use crate::raw::{RawListener, RawMatch, RawProtocol, RawRoute};

impl Checks<'_> {
    /// `listeners:`: required, non-empty, names and addresses unique.
    pub(super) fn listeners(
        &mut self,
        raw: Option<Vec<RawListener>>,
        upstreams: &UpstreamNames,
        segments: &SegmentNames,
    ) -> CheckedListeners {
        let mut checked = CheckedListeners {
            built: None,
            binds: Vec::new(),
        };
        let Some(raw) = self.non_empty_list(raw, "listeners", "", "listener") else {
            return checked;
        };
        let mut names = Names::new("listener", "");
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (i, mut listener) in raw.into_iter().enumerate() {
            let path = format!("listeners[{i}]");
            let name = self.required(listener.name.as_deref(), &path, "name");
            if let Some(name) = name {
                self.define(&mut names, name, i, ());
            }
            let name = name.map(str::to_owned);
            let bind = self.bind(listener.bind.as_deref(), &path, &checked.binds);
            if let Some(bind) = bind {
                let label = name.clone().unwrap_or_else(|| path.clone());
                checked.binds.push((label, bind));
            }
            let segment_mode = segment_mode(listener.segment_mode);
            let allow = self.allow_list(listener.allow.take(), &path, segments);
            let kind = self.listener_kind(listener, &path, upstreams, segments);
            built = built.zip(name.zip(bind).zip(kind).zip(allow)).map(
                |(mut all, (((name, bind), kind), allow))| {
                    all.push(Listener {
                        name,
                        bind,
                        kind,
                        allow,
                        segment_mode,
                    });
                    all
                },
            );
        }
        checked.built = built;
        checked
    }

    /// A listener's `bind`: an `IP:PORT` that no earlier listener can conflict with.
    fn bind(
        &mut self,
        text: Option<&str>,
        path: &str,
        earlier: &[(String, SocketAddr)],
    ) -> Option<SocketAddr> {
        let bind_path = format!("{path}.bind");
        let text = self.required(text, path, "bind")?;
        let bind = self.socket_addr(text, &bind_path)?;
        if let Some((name, other)) = earlier.iter().find(|(_, other)| overlaps(bind, *other)) {
            self.report(
                &bind_path,
                format!(
                    "address {bind} conflicts with listener {} on {other}",
                    quoted(name)
                ),
            );
        }
        Some(bind)
    }

    /// The protocol and the keys it needs; keys meant for another protocol are errors.
    fn listener_kind(
        &mut self,
        raw: RawListener,
        path: &str,
        upstreams: &UpstreamNames,
        segments: &SegmentNames,
    ) -> Option<ListenerKind> {
        let Some(protocol) = raw.protocol else {
            self.missing(path, "protocol", "expected `http`, `https` or `tcp`");
            return None;
        };
        let only_tcp = "`upstream` is only for tcp listeners; http and https listeners pick \
                        an upstream in each of their `routes`";
        let only_https = "`tls` is only for https listeners";
        if protocol != RawProtocol::Tcp && raw.idle_timeout.is_some() {
            self.report(
                &format!("{path}.idle_timeout"),
                "`idle_timeout` is only for tcp listeners; for http ones see the upstream's \
                 `read_timeout`",
            );
        }
        match protocol {
            RawProtocol::Http => {
                if raw.upstream.is_some() {
                    self.report(&format!("{path}.upstream"), only_tcp);
                }
                if raw.tls.is_some() {
                    self.report(
                        &format!("{path}.tls"),
                        format!("{only_https}; did you mean `protocol: https`?"),
                    );
                }
                let routes = self.routes(raw.routes, path, upstreams, segments, "an http");
                Some(ListenerKind::Http { routes: routes? })
            }
            RawProtocol::Https => {
                if raw.upstream.is_some() {
                    self.report(&format!("{path}.upstream"), only_tcp);
                }
                let tls = match raw.tls {
                    None => {
                        self.missing(path, "tls", "an https listener needs a `cert` and a `key`");
                        None
                    }
                    Some(tls) => self.tls(tls, &format!("{path}.tls")),
                };
                let routes = self.routes(raw.routes, path, upstreams, segments, "an https");
                Some(ListenerKind::Https {
                    tls: tls?,
                    routes: routes?,
                })
            }
            RawProtocol::Tcp => {
                if raw.routes.is_some() {
                    self.report(
                        &format!("{path}.routes"),
                        "`routes` are only for http and https listeners; a tcp listener \
                         forwards every connection to its `upstream`",
                    );
                }
                if raw.tls.is_some() {
                    self.report(&format!("{path}.tls"), only_https);
                }
                let Some(name) = raw.upstream else {
                    self.missing(path, "upstream", "a tcp listener forwards to one upstream");
                    return None;
                };
                let upstream = self.upstream_ref(&name, &format!("{path}.upstream"), upstreams);
                let idle_timeout = match raw.idle_timeout.as_deref() {
                    None => Some(defaults::TCP_IDLE_TIMEOUT),
                    Some(text) => self.duration_within(
                        text,
                        &format!("{path}.idle_timeout"),
                        Duration::from_secs(1),
                        Duration::from_secs(7 * 24 * 3600),
                    ),
                };
                Some(ListenerKind::Tcp {
                    upstream: upstream?,
                    idle_timeout: idle_timeout?,
                })
            }
        }
    }

    /// `routes:` of an http or https listener: at least one.
    fn routes(
        &mut self,
        raw: Option<Vec<RawRoute>>,
        path: &str,
        upstreams: &UpstreamNames,
        segments: &SegmentNames,
        kind: &str,
    ) -> Option<Vec<Route>> {
        let why = format!("{kind} listener needs at least one route");
        let raw = self.non_empty_list(raw, &format!("{path}.routes"), &why, "route")?;
        let checked: Vec<Option<Route>> = raw
            .into_iter()
            .enumerate()
            .map(|(j, route)| {
                self.route(route, &format!("{path}.routes[{j}]"), upstreams, segments)
            })
            .collect();
        checked.into_iter().collect()
    }

    /// One route; without `match` it matches every request.
    fn route(
        &mut self,
        raw: RawRoute,
        path: &str,
        upstreams: &UpstreamNames,
        segments: &SegmentNames,
    ) -> Option<Route> {
        let RawMatch { host, path_prefix } = raw.matcher.unwrap_or(RawMatch {
            host: None,
            path_prefix: None,
        });
        let host = match host {
            None => Some(None),
            Some(text) => self.host(&text, &format!("{path}.match.host")).map(Some),
        };
        let path_prefix = match path_prefix {
            None => Some(None),
            Some(text) if text.starts_with('/') => Some(Some(text)),
            Some(text) => {
                self.report(
                    &format!("{path}.match.path_prefix"),
                    format!(
                        "expected a path starting with \"/\", found {}",
                        quoted(&text)
                    ),
                );
                None
            }
        };
        let upstream = self
            .required(raw.upstream.as_deref(), path, "upstream")
            .and_then(|name| self.upstream_ref(name, &format!("{path}.upstream"), upstreams));
        let allow = self.allow_list(raw.allow, path, segments);
        Some(Route {
            host: host?,
            path_prefix: path_prefix?,
            upstream: upstream?,
            allow: allow?,
        })
    }

    /// A `match.host`: a bare host name (or IP), no scheme, no port; lower-cased.
    fn host(&mut self, text: &str, path: &str) -> Option<String> {
        let host = text.trim();
        let problem = if host.is_empty() {
            Some("expected a host name, found an empty one")
        } else if host.contains("://") {
            Some("expected a host name without a scheme")
        } else if host.contains('/') {
            Some("expected a host name without a path")
        } else if host.chars().any(char::is_whitespace) {
            Some("expected a host name without spaces")
        } else if has_port(host) {
            Some("expected a host name without a port (routes match any port)")
        } else {
            None
        };
        match problem {
            Some(problem) if host.is_empty() => {
                self.report(path, problem);
                None
            }
            Some(problem) => {
                self.report(path, format!("{problem}, found {}", quoted(text)));
                None
            }
            None => Some(host.to_ascii_lowercase()),
        }
    }

    /// An upstream named in a route or tcp listener, as an index.
    fn upstream_ref(&mut self, name: &str, path: &str, upstreams: &UpstreamNames) -> Option<usize> {
        self.resolve(upstreams, name, path)
            .map(|upstream| upstream.index)
    }
}

/// Whether a host has a `:port` suffix; a bracketed IPv6 literal has colons of its own.
fn has_port(host: &str) -> bool {
    match host.strip_prefix('[') {
        Some(rest) => !rest.ends_with(']'),
        None => host.contains(':'),
    }
}
