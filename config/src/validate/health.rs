//! An upstream's view of backend health: active checks (`health_check:`), passive ejection
//! (`outlier_detection:`) and the panic threshold below which both are ignored.

use std::time::Duration;

use humantime::format_duration;

use super::{defaults, Checks};
use crate::issue::quoted;
use crate::model::{CheckKind, HealthCheck, OutlierDetection, StatusRange};
use crate::raw::{RawCheckKind, RawHealthCheck, RawOutlierDetection};

/// Shortest check interval: checks more often than this are load, not information.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest check interval and longest first ejection.
const HOUR: Duration = Duration::from_secs(3600);
/// Longest ejection.
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Shortest ejection (a shorter one would eject nothing).
const MIN_EJECTION: Duration = Duration::from_millis(1);
/// The statuses an HTTP check may expect.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

impl Checks<'_> {
    /// `health_check:` of the upstream at `path`: `Some(None)` when absent, defaults for
    /// what it leaves out.
    pub(super) fn health_check(
        &mut self,
        raw: Option<&RawHealthCheck>,
        path: &str,
    ) -> Option<Option<HealthCheck>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let path = format!("{path}.health_check");
        let at = |key: &str| format!("{path}.{key}");
        let kind = match raw.kind {
            None | Some(RawCheckKind::Tcp) => {
                let hint = if raw.kind.is_none() {
                    "add `kind: http` (the default kind is tcp)"
                } else {
                    "did you mean `kind: http`?"
                };
                let mut ok = true;
                for (key, given) in [
                    ("path", raw.path.is_some()),
                    ("expect", raw.expect.is_some()),
                ] {
                    if given {
                        self.report(&at(key), format!("`{key}` is only for http checks; {hint}"));
                        ok = false;
                    }
                }
                ok.then_some(CheckKind::Tcp)
            }
            Some(RawCheckKind::Http) => {
                let check_path = match raw.path.as_deref() {
                    None => Some(defaults::CHECK_PATH.to_owned()),
                    Some(text) => self.check_path(text, &at("path")),
                };
                let expect = match raw.expect.as_deref() {
                    None => Some(defaults::CHECK_EXPECT),
                    Some(text) => self.status_range(text, &at("expect")),
                };
                check_path
                    .zip(expect)
                    .map(|(path, expect)| CheckKind::Http { path, expect })
            }
        };
        let interval = match raw.interval.as_deref() {
            None => Some(defaults::CHECK_INTERVAL),
            Some(text) => self.duration_within(text, &at("interval"), MIN_INTERVAL, HOUR),
        };
        let mut timeout = self.timeout(
            raw.timeout.as_deref(),
            &at("timeout"),
            defaults::CHECK_TIMEOUT,
        );
        if let (Some(i), Some(t)) = (interval, timeout) {
            if t >= i {
                // Point at whichever of the two the file wrote, the timeout if both.
                match (raw.timeout.as_deref(), raw.interval.as_deref()) {
                    (Some(text), _) => self.report(
                        &at("timeout"),
                        format!(
                            "expected a timeout shorter than `interval` ({}), found {}",
                            format_duration(i),
                            quoted(text)
                        ),
                    ),
                    (None, Some(text)) => self.report(
                        &at("interval"),
                        format!(
                            "expected an interval longer than `timeout` ({} by default), found {}; set a shorter `timeout`",
                            format_duration(t),
                            quoted(text)
                        ),
                    ),
                    (None, None) => self.report(&path, "internal error: default timeout >= interval"),
                }
                timeout = None;
            }
        }
        let mut count = |value: Option<i64>, key: &str, default: u32| match value {
            None => Some(default),
            Some(n) => self
                .number(n, 1, 100, &at(key))
                .and_then(|n| u32::try_from(n).ok()),
        };
        let rise = count(raw.rise, "rise", defaults::CHECK_RISE);
        let fall = count(raw.fall, "fall", defaults::CHECK_FALL);
        Some(Some(HealthCheck {
            kind: kind?,
            interval: interval?,
            timeout: timeout?,
            rise: rise?,
            fall: fall?,
        }))
    }

    /// The request path of an HTTP check: what goes on the request line as written.
    fn check_path(&mut self, text: &str, path: &str) -> Option<String> {
        if !text.starts_with('/') {
            self.report(
                path,
                format!(
                    "expected a path starting with \"/\", found {}",
                    quoted(text)
                ),
            );
            return None;
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            self.report(
                path,
                format!(
                    "expected a path without spaces, control or non-ASCII characters (percent-encode them), found {}",
                    quoted(text)
                ),
            );
            return None;
        }
        Some(text.to_owned())
    }

    /// `204` or `200-399`: statuses from 100 to 599, the lower first.
    fn status_range(&mut self, text: &str, path: &str) -> Option<StatusRange> {
        let trimmed = text.trim();
        let (low, high) = trimmed.split_once('-').unwrap_or((trimmed, trimmed));
        let status = |part: &str| {
            let part = part.trim();
            let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            // Too many digits for a u16 is out of range all the same.
            digits.then(|| part.parse::<u16>().unwrap_or(u16::MAX))
        };
        let Some((low, high)) = status(low).zip(status(high)) else {
            self.report(
                path,
                format!(
                    "invalid status range {}: expected a status like 204 or a range like 200-399",
                    quoted(text)
                ),
            );
            return None;
        };
        if !STATUSES.contains(&low) || !STATUSES.contains(&high) {
            self.report(
                path,
                format!(
                    "expected statuses from {} to {}, found {}",
                    STATUSES.start(),
                    STATUSES.end(),
                    quoted(text)
                ),
            );
            return None;
        }
        if low > high {
            self.report(
                path,
                format!(
                    "expected the lower status first, like 200-399, found {}",
                    quoted(text)
                ),
            );
            return None;
        }
        Some(StatusRange { low, high })
    }

    /// `outlier_detection:` of the upstream at `path`, defaults for what it leaves out.
    pub(super) fn outlier_detection(
        &mut self,
        raw: Option<&RawOutlierDetection>,
        path: &str,
    ) -> Option<OutlierDetection> {
        let defaults = OutlierDetection::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let path = format!("{path}.outlier_detection");
        let at = |key: &str| format!("{path}.{key}");
        let consecutive_failures = match raw.consecutive_failures {
            None => Some(defaults.consecutive_failures),
            Some(n) => self
                .number(n, 0, 1000, &at("consecutive_failures"))
                .and_then(|n| u32::try_from(n).ok()),
        };
        let max_ejection_percent = match raw.max_ejection_percent {
            None => Some(defaults.max_ejection_percent),
            Some(n) => self
                .number(n, 0, 100, &at("max_ejection_percent"))
                .and_then(|n| u32::try_from(n).ok()),
        };
        let base_ejection = match raw.base_ejection.as_deref() {
            None => Some(defaults.base_ejection),
            Some(text) => self.duration_within(text, &at("base_ejection"), MIN_EJECTION, HOUR),
        };
        let mut max_ejection = match raw.max_ejection.as_deref() {
            None => Some(defaults.max_ejection),
            Some(text) => self.duration_within(text, &at("max_ejection"), MIN_EJECTION, DAY),
        };
        if let (Some(base), Some(max)) = (base_ejection, max_ejection) {
            if max < base {
                // Point at whichever of the two the file wrote, the maximum if both.
                match (raw.max_ejection.as_deref(), raw.base_ejection.as_deref()) {
                    (Some(text), _) => self.report(
                        &at("max_ejection"),
                        format!(
                            "expected a duration no shorter than `base_ejection` ({}), found {}",
                            format_duration(base),
                            quoted(text)
                        ),
                    ),
                    (None, Some(text)) => self.report(
                        &at("base_ejection"),
                        format!(
                            "expected a duration no longer than `max_ejection` ({} by default), found {}; set a longer `max_ejection`",
                            format_duration(max),
                            quoted(text)
                        ),
                    ),
                    (None, None) => self.report(
                        &path,
                        "internal error: default max_ejection < base_ejection",
                    ),
                }
                max_ejection = None;
            }
        }
        Some(OutlierDetection {
            consecutive_failures: consecutive_failures?,
            base_ejection: base_ejection?,
            max_ejection: max_ejection?,
            max_ejection_percent: max_ejection_percent?,
        })
    }

    /// `panic_threshold:` of the upstream at `path`: a share from 0 to 1.
    pub(super) fn panic_threshold(&mut self, value: Option<f64>, path: &str) -> Option<f64> {
        match value {
            None => Some(defaults::PANIC_THRESHOLD),
            Some(v) => self.number(v, 0.0, 1.0, &format!("{path}.panic_threshold")),
        }
    }
}
