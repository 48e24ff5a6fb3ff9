//! Policy from observed behaviour: the flows learn mode recorded, written as a
//! `segments:` + `allow:` YAML fragment that admits exactly those sources, ready to paste.
//!
//! Each listener gets one segment, `learned-<listener>`, listing the /24 and /64 networks
//! it saw, each with a comment saying how many flows came from it (and through which
//! routes). The output depends only on the flows, never on the order they were recorded.

use std::fmt::Write;

use crate::flows::Flow;

/// The YAML fragment for `flows` (as [`crate::Flows::observed`] orders them); `dropped`
/// flows that could not be recorded are mentioned, since their sources may be missing.
pub fn render(flows: &[Flow], dropped: u64) -> String {
    let listeners = by_listener(flows);
    let mut out = String::new();
    if listeners.is_empty() {
        out.push_str(
            "# No flows recorded: no listener is in learn mode, or none has had traffic yet.\n",
        );
    } else {
        let sources: usize = listeners.iter().map(|l| l.sources.len()).sum();
        let total: u64 = flows.iter().map(|f| f.count).sum();
        let _ = writeln!(
            out,
            "# Segments proposed by augur from traffic seen in learn mode: {}, {}, {}.",
            plural(listeners.len() as u64, "listener"),
            plural(sources as u64, "source network"),
            plural(total, "flow"),
        );
        out.push_str(
            "# Paste `segments:` at the top level of the config, and each listener's `allow:`\n\
             # and `segment_mode:` into the listener of that name (rename a segment whose name\n\
             # is taken). Comments count the flows seen from each network.\n",
        );
    }
    if dropped > 0 {
        let _ = writeln!(
            out,
            "# {} could not be recorded (the flow table was full); some sources may be missing.",
            plural(dropped, "flow"),
        );
    }
    if listeners.is_empty() {
        out.push_str("segments: []\n");
        return out;
    }
    out.push_str("segments:\n");
    for listener in &listeners {
        let _ = writeln!(out, "  - name: {}", scalar(&segment_name(listener.name)));
        out.push_str("    sources:\n");
        let shown: Vec<String> = listener
            .sources
            .iter()
            .map(|s| {
                if s.source.addr().is_ipv6() {
                    format!("\"{}\"", s.source)
                } else {
                    s.source.to_string()
                }
            })
            .collect();
        let width = shown.iter().map(String::len).max().unwrap_or(0);
        for (text, source) in shown.iter().zip(&listener.sources) {
            let _ = writeln!(out, "      - {text:width$}  # {}", source.comment());
        }
    }
    out.push_str("listeners:\n");
    for listener in &listeners {
        let _ = writeln!(out, "  - name: {}", scalar(listener.name));
        let _ = writeln!(out, "    allow: [{}]", scalar(&segment_name(listener.name)));
        out.push_str("    segment_mode: enforce\n");
    }
    out
}

/// The flows of one listener, by source network.
struct ListenerFlows<'f> {
    name: &'f str,
    sources: Vec<SourceFlows<'f>>,
}

/// The flows from one source network, by route.
struct SourceFlows<'f> {
    source: augur_config::Prefix,
    routes: Vec<&'f Flow>,
}

impl SourceFlows<'_> {
    /// `44 flows (route 0: 40, route 1: 4)`, or just `3 flows` when no route was recorded.
    fn comment(&self) -> String {
        let total: u64 = self.routes.iter().map(|f| f.count).sum();
        let mut text = plural(total, "flow");
        if self.routes.iter().any(|f| f.route.is_some()) {
            let parts: Vec<String> = self
                .routes
                .iter()
                .map(|f| match f.route {
                    Some(route) => format!("route {route}: {}", f.count),
                    None => format!("no route: {}", f.count),
                })
                .collect();
            let _ = write!(text, " ({})", parts.join(", "));
        }
        text
    }
}

/// Groups flows that are sorted by listener, source, route.
fn by_listener(flows: &[Flow]) -> Vec<ListenerFlows<'_>> {
    let mut listeners: Vec<ListenerFlows<'_>> = Vec::new();
    for flow in flows {
        if listeners.last().is_none_or(|l| l.name != flow.listener) {
            listeners.push(ListenerFlows {
                name: &flow.listener,
                sources: Vec::new(),
            });
        }
        let Some(listener) = listeners.last_mut() else {
            continue;
        };
        match listener.sources.last_mut() {
            Some(last) if last.source == flow.source => last.routes.push(flow),
            _ => listener.sources.push(SourceFlows {
                source: flow.source,
                routes: vec![flow],
            }),
        }
    }
    listeners
}

/// The proposed segment of a listener.
fn segment_name(listener: &str) -> String {
    format!("learned-{listener}")
}

/// `1 flow`, `2 flows`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `text` as a YAML scalar: bare when that reads back as the same string in block and flow
/// context alike, otherwise double-quoted with escapes.
fn scalar(text: &str) -> String {
    let bare = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf"
        );
    if bare {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_config::Prefix;

    fn flow(listener: &str, route: Option<usize>, source: &str, count: u64) -> Flow {
        Flow {
            listener: listener.into(),
            route,
            source: Prefix::parse(source).unwrap(),
            count,
        }
    }

    #[test]
    fn fragment_with_counts_as_comments() {
        let flows = [
            flow("db", None, "10.1.3.0/24", 1),
            flow("web", Some(0), "10.1.2.0/24", 40),
            flow("web", Some(1), "10.1.2.0/24", 4),
            flow("web", None, "127.0.0.0/24", 2),
            flow("web", Some(1), "fd00:1:2:3::/64", 3),
        ];
        assert_eq!(
            render(&flows, 0),
            "\
# Segments proposed by augur from traffic seen in learn mode: 2 listeners, 4 source networks, 50 flows.
# Paste `segments:` at the top level of the config, and each listener's `allow:`
# and `segment_mode:` into the listener of that name (rename a segment whose name
# is taken). Comments count the flows seen from each network.
segments:
  - name: learned-db
    sources:
      - 10.1.3.0/24  # 1 flow
  - name: learned-web
    sources:
      - 10.1.2.0/24        # 44 flows (route 0: 40, route 1: 4)
      - 127.0.0.0/24       # 2 flows
      - \"fd00:1:2:3::/64\"  # 3 flows (route 1: 3)
listeners:
  - name: db
    allow: [learned-db]
    segment_mode: enforce
  - name: web
    allow: [learned-web]
    segment_mode: enforce
"
        );
    }

    #[test]
    fn nothing_seen_and_dropped_flows() {
        assert_eq!(
            render(&[], 0),
            "# No flows recorded: no listener is in learn mode, or none has had traffic yet.\n\
             segments: []\n"
        );
        let text = render(&[flow("web", None, "10.0.0.0/24", 1)], 5);
        assert!(
            text.contains("# 5 flows could not be recorded (the flow table was full)"),
            "{text}"
        );
    }

    #[test]
    fn names_are_quoted_when_yaml_would_misread_them() {
        assert_eq!(scalar("web-1.a_b"), "web-1.a_b");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("Null"), "\"Null\"");
        assert_eq!(scalar("1e3"), "\"1e3\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("a,b"), "\"a,b\"");
        assert_eq!(scalar("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(scalar("a\nb\u{85}"), "\"a\\u000ab\\u0085\"");
        assert_eq!(scalar("café"), "\"café\"");
        assert_eq!(scalar(""), "\"\"");
    }
}
