//! `segments:`, `segmentation:` and the `allow:` lists of listeners and routes.

use super::names::Names;
use super::Checks;
use crate::issue::quoted;
use crate::model::{Segment, SegmentDefault, SegmentMode, Segmentation};
use crate::prefix::{Prefix, PrefixError};
use crate::raw::{RawSegment, RawSegmentDefault, RawSegmentMode, RawSegmentation};

/// The segments as built (if all were valid), and their names for resolving `allow:` lists.
pub(super) struct CheckedSegments {
    pub built: Option<Vec<Segment>>,
    pub names: SegmentNames,
}

/// Segment names, for `allow:` lists to refer to.
pub(super) type SegmentNames = Names;

impl Checks<'_> {
    /// `segments:`: optional; names unique, each with at least one valid source.
    pub(super) fn segments(&mut self, raw: Option<Vec<RawSegment>>) -> CheckedSegments {
        let mut names = Names::new("segment", "; add them under a top-level `segments:`");
        let raw = raw.unwrap_or_default();
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (i, segment) in raw.into_iter().enumerate() {
            let path = format!("segments[{i}]");
            let name = self.required(segment.name.as_deref(), &path, "name");
            if let Some(name) = name {
                self.define(&mut names, name, i, ());
            }
            let name = name.map(str::to_owned);
            let sources = self.prefixes(
                segment.sources,
                &format!("{path}.sources"),
                "a segment needs at least one address or prefix, like 10.1.0.0/16",
            );
            built = built
                .zip(name.zip(sources))
                .map(|(mut all, (name, sources))| {
                    all.push(Segment { name, sources });
                    all
                });
        }
        CheckedSegments { built, names }
    }

    /// The networks at `path` (a segment's `sources`, a peer's `allowed_ips`): at least one,
    /// each canonical; `why` says what the list is for.
    pub(super) fn prefixes(
        &mut self,
        raw: Option<Vec<String>>,
        path: &str,
        why: &str,
    ) -> Option<Vec<Prefix>> {
        let raw = self.non_empty_list(raw, path, why, "address or prefix")?;
        let checked: Vec<Option<Prefix>> = raw
            .iter()
            .enumerate()
            .map(|(j, text)| self.prefix(text, &format!("{path}[{j}]")))
            .collect();
        checked.into_iter().collect()
    }

    /// One network (a segment source or a tunnel peer's allowed IPs).
    pub(super) fn prefix(&mut self, text: &str, path: &str) -> Option<Prefix> {
        match Prefix::parse(text.trim()) {
            Ok(prefix) => Some(prefix),
            Err(error @ PrefixError::HostBits { .. }) => {
                self.report(path, error.to_string());
                None
            }
            Err(error) => {
                self.report(path, format!("invalid prefix {}: {error}", quoted(text)));
                None
            }
        }
    }

    /// An `allow:` list of a listener or route: segment names, at least one. The outer
    /// `Option` is `None` when the list has a problem; the inner one when there is no list.
    pub(super) fn allow_list(
        &mut self,
        raw: Option<Vec<String>>,
        path: &str,
        segments: &SegmentNames,
    ) -> Option<Option<Vec<usize>>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let path = format!("{path}.allow");
        if raw.is_empty() {
            self.report(
                &path,
                "expected at least one segment name, found none; leave `allow` out to admit \
                 what `segmentation.default` says",
            );
            return None;
        }
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (k, name) in raw.iter().enumerate() {
            let found = self.resolve(segments, name, &format!("{path}[{k}]"));
            let found = found.map(|segment| segment.index);
            built = built.zip(found).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        built.map(Some)
    }
}

/// `segmentation:`, with its default (serde has already checked the value).
pub(super) fn segmentation(raw: RawSegmentation) -> Segmentation {
    Segmentation {
        default: match raw.default {
            None => SegmentDefault::default(),
            Some(RawSegmentDefault::Allow) => SegmentDefault::Allow,
            Some(RawSegmentDefault::Deny) => SegmentDefault::Deny,
        },
    }
}

/// A listener's `segment_mode`, `enforce` when left out.
pub(super) fn segment_mode(raw: Option<RawSegmentMode>) -> SegmentMode {
    match raw {
        None | Some(RawSegmentMode::Enforce) => SegmentMode::Enforce,
        Some(RawSegmentMode::Audit) => SegmentMode::Audit,
        Some(RawSegmentMode::Learn) => SegmentMode::Learn,
    }
}
