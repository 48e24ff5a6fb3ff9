//! Prometheus text exposition (format 0.0.4): a family is declared once (name, type, help,
//! label names) and written whole, its samples given typed label values; escaping and number
//! formatting happen here and nowhere else.
//!
//! Figures are read at scrape time from the counters and snapshots the rest of the process
//! keeps, so there is no registry of live metric objects: a family is a constant, a document
//! is a string built per scrape.

use std::fmt::{self, Write as _};

/// What a family measures, as its `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (reset by a restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, a sum and a count.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A metric family: its name, type, help text and the names of its `N` labels.
#[derive(Debug, Clone, Copy)]
pub struct Family<const N: usize> {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: [&'static str; N],
}

impl<const N: usize> Family<N> {
    /// A family; [`families!`] declares them with less ceremony.
    pub const fn new(
        kind: Kind,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
    ) -> Self {
        Family {
            name,
            kind,
            // A doc comment's text starts with the space after `///`.
            help: help.trim_ascii(),
            labels,
        }
    }
}

/// Declares metric families as constants, one a line: `ID: Kind metric_name{label, ..};`
/// under a doc comment that is the family's help text (so it is written once, and read the
/// same in the code and in `# HELP`).
macro_rules! families {
    ($(
        $(#[doc = $help:literal])+
        $id:ident: $kind:ident $name:ident { $($label:ident),* };
    )*) => {$(
        $(#[doc = $help])+
        const $id: $crate::exposition::Family<{ <[&str]>::len(&[$(stringify!($label)),*]) }> =
            $crate::exposition::Family::new(
                $crate::exposition::Kind::$kind,
                stringify!($name),
                concat!($($help),+),
                [$(stringify!($label)),*],
            );
    )*};
}
pub(crate) use families;

/// A sample's value: a count, printed exactly, or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer (counters and counts), exact beyond 2^53.
    Int(u64),
    /// A float; not-a-number and infinities are spelled as Prometheus reads them.
    Float(f64),
}

impl From<u64> for Number {
    fn from(n: u64) -> Self {
        Number::Int(n)
    }
}

impl From<u32> for Number {
    fn from(n: u32) -> Self {
        Number::Int(u64::from(n))
    }
}

impl From<usize> for Number {
    fn from(n: usize) -> Self {
        Number::Int(n as u64)
    }
}

impl From<bool> for Number {
    fn from(b: bool) -> Self {
        Number::Int(u64::from(b))
    }
}

impl From<f64> for Number {
    fn from(x: f64) -> Self {
        Number::Float(x)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(n) => write!(f, "{n}"),
            Number::Float(x) if x.is_nan() => f.write_str("NaN"),
            Number::Float(x) if x.is_infinite() => {
                f.write_str(if x > 0.0 { "+Inf" } else { "-Inf" })
            }
            // Rust never writes an exponent here, and Prometheus parses the plain digits.
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// A `/metrics` document being built.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    written: Vec<&'static str>,
}

impl Exposition {
    /// An empty document.
    pub fn new() -> Self {
        Exposition {
            out: String::with_capacity(16 * 1024),
            written: Vec::with_capacity(80),
        }
    }

    /// Writes `family` whole: its `# HELP` and `# TYPE` lines, then the samples `samples`
    /// writes (none is fine: the family is still announced).
    pub fn family<const N: usize>(
        &mut self,
        family: &Family<N>,
        samples: impl FnOnce(&mut Samples<'_, N>),
    ) {
        debug_assert!(is_name(family.name), "bad family name {}", family.name);
        debug_assert!(
            family.labels.iter().all(|l| is_name(l) && *l != "le"),
            "bad label names in {}",
            family.name
        );
        debug_assert!(
            !self.written.contains(&family.name),
            "family {} written twice",
            family.name
        );
        self.written.push(family.name);
        let out = &mut self.out;
        let _ = write!(out, "# HELP {} ", family.name);
        escape_help(out, family.help);
        let _ = writeln!(out, "\n# TYPE {} {}", family.name, family.kind.name());
        samples(&mut Samples { out, family });
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// The samples of one family, written under its header.
#[derive(Debug)]
pub struct Samples<'a, const N: usize> {
    out: &'a mut String,
    family: &'a Family<N>,
}

impl<const N: usize> Samples<'_, N> {
    /// One sample, its label values in the order of the family's label names.
    pub fn sample(&mut self, labels: [&str; N], value: impl Into<Number>) {
        debug_assert!(self.family.kind != Kind::Histogram, "{}", self.family.name);
        self.line("", labels, None, value.into());
    }

    /// One histogram: `(upper bound, cumulative count)` per bucket, the last bound
    /// `f64::INFINITY` (its count is the total), and the sum of the observations.
    pub fn histogram(&mut self, labels: [&str; N], buckets: &[(f64, u64)], sum: f64) {
        debug_assert!(self.family.kind == Kind::Histogram, "{}", self.family.name);
        debug_assert!(buckets.last().is_some_and(|(le, _)| *le == f64::INFINITY));
        for (le, n) in buckets {
            self.line("_bucket", labels, Some(*le), Number::Int(*n));
        }
        self.line("_sum", labels, None, Number::Float(sum));
        let count = buckets.last().map_or(0, |(_, n)| *n);
        self.line("_count", labels, None, Number::Int(count));
    }

    fn line(&mut self, suffix: &str, labels: [&str; N], le: Option<f64>, value: Number) {
        let out = &mut *self.out;
        out.push_str(self.family.name);
        out.push_str(suffix);
        if N > 0 || le.is_some() {
            let mut separator = '{';
            for (name, value) in self.family.labels.iter().zip(labels) {
                out.push(separator);
                separator = ',';
                out.push_str(name);
                out.push_str("=\"");
                escape_label(out, value);
                out.push('"');
            }
            if let Some(le) = le {
                out.push(separator);
                let _ = write!(out, "le=\"{}\"", Number::Float(le));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text as the format wants it: backslash and newline escaped (quotes are literal).
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Whether `s` is a valid metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    families! {
        /// Requests.
        REQUESTS: Counter t_requests_total{who, class};
        /// Help over
        /// two lines.
        TWO_LINES: Gauge t_two{};
        /// Latency.
        LATENCY: Histogram t_seconds{u};
    }

    #[test]
    fn label_values_are_escaped() {
        let mut doc = Exposition::new();
        doc.family(&REQUESTS, |s| {
            s.sample(["a\"b\\c\nd", "2xx"], 3u64);
            s.sample(["plain", ""], 0u64);
        });
        assert_eq!(
            doc.finish(),
            "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n\
             t_requests_total{who=\"a\\\"b\\\\c\\nd\",class=\"2xx\"} 3\n\
             t_requests_total{who=\"plain\",class=\"\"} 0\n"
        );
    }

    #[test]
    fn help_is_escaped_but_keeps_quotes() {
        let family = Family::new(Kind::Gauge, "t_g", "a \"b\" \\ c\nd", []);
        let mut doc = Exposition::new();
        doc.family(&family, |s| s.sample([], 1u64));
        assert_eq!(
            doc.finish(),
            "# HELP t_g a \"b\" \\\\ c\\nd\n# TYPE t_g gauge\nt_g 1\n"
        );
    }

    #[test]
    fn floats_are_spelled_as_prometheus_reads_them() {
        let spelled = |x: f64| Number::from(x).to_string();
        assert_eq!(spelled(f64::NAN), "NaN");
        assert_eq!(spelled(f64::INFINITY), "+Inf");
        assert_eq!(spelled(f64::NEG_INFINITY), "-Inf");
        assert_eq!(spelled(-1.0), "-1");
        assert_eq!(spelled(0.0005), "0.0005");
        assert_eq!(spelled(1e21), "1000000000000000000000");
        assert_eq!(Number::from(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(Number::from(true).to_string(), "1");
    }

    #[test]
    fn families_are_written_whole_in_order() {
        let a = Family::new(Kind::Gauge, "t_a", "A.", ["x"]);
        let b = Family::new(Kind::Gauge, "t_b", "B.", ["x"]);
        let mut doc = Exposition::new();
        for family in [a, b] {
            doc.family(&family, |s| {
                for x in ["1", "2"] {
                    s.sample([x], 0u64);
                }
            });
        }
        let text = doc.finish();
        // The family each line belongs to: `# HELP NAME ..`, `# TYPE NAME ..`, `NAME{..} v`.
        let names: Vec<&str> = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(header) => header.split(' ').nth(1).unwrap_or(""),
                None => l.split('{').next().unwrap_or(""),
            })
            .collect();
        assert_eq!(
            names,
            ["t_a", "t_a", "t_a", "t_a", "t_b", "t_b", "t_b", "t_b"]
        );
    }

    #[test]
    fn declared_help_is_the_doc_comment_joined() {
        let mut doc = Exposition::new();
        doc.family(&TWO_LINES, |s| s.sample([], 0.5));
        assert_eq!(
            doc.finish(),
            "# HELP t_two Help over two lines.\n# TYPE t_two gauge\nt_two 0.5\n"
        );
    }

    #[test]
    fn an_empty_family_is_still_announced() {
        let mut doc = Exposition::new();
        doc.family(&REQUESTS, |_| {});
        assert_eq!(
            doc.finish(),
            "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"
        );
    }

    #[test]
    fn histograms_have_buckets_sum_and_count() {
        let mut doc = Exposition::new();
        doc.family(&LATENCY, |s| {
            s.histogram(["a"], &[(0.5, 1), (10.0, 2), (f64::INFINITY, 3)], 20.25);
        });
        assert_eq!(
            doc.finish(),
            "# HELP t_seconds Latency.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{u=\"a\",le=\"0.5\"} 1\n\
             t_seconds_bucket{u=\"a\",le=\"10\"} 2\n\
             t_seconds_bucket{u=\"a\",le=\"+Inf\"} 3\n\
             t_seconds_sum{u=\"a\"} 20.25\n\
             t_seconds_count{u=\"a\"} 3\n"
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "written twice")]
    fn a_family_cannot_be_written_twice() {
        let mut doc = Exposition::new();
        doc.family(&REQUESTS, |_| {});
        doc.family(&REQUESTS, |_| {});
    }

    #[test]
    fn names_are_checked() {
        assert!(is_name("augur_backend_up"));
        assert!(is_name("a:b_1"));
        assert!(!is_name("1a"));
        assert!(!is_name("a-b"));
        assert!(!is_name(""));
    }
}
