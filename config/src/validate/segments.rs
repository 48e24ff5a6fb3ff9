//! `segments:`, `segmentation:` and the `allow:` lists of listeners and routes.

use std::collections::HashMap;

use super::Checks;
use crate::issue::quoted;
use crate::model::{Segment, SegmentDefault, SegmentMode, Segmentation};
use crate::prefix::{Prefix, PrefixError};
use crate::raw::{RawSegment, RawSegmentDefault, RawSegmentMode, RawSegmentation};
use crate::suggest::nearest;

/// The segments as built (if all were valid), and their names for resolving `allow:` lists.
pub(super) struct CheckedSegments {
    pub built: Option<Vec<Segment>>,
    pub names: SegmentNames,
}

/// Segment names as written, so that an `allow` naming a segment that exists but has an
/// error of its own gets one error (the segment's), not two.
#[derive(Default)]
pub(super) struct SegmentNames {
    /// Each name with the index of its first definition.
    index: HashMap<String, usize>,
    /// The names in file order, for suggestions.
    ordered: Vec<String>,
}

impl SegmentNames {
    /// Index into `Config::segments` of the segment called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// "no segment named ..." with a hint of what was meant.
    pub fn unknown(&self, name: &str) -> String {
        let names = self.ordered.iter().map(String::as_str);
        let hint = match nearest(name, names.clone()) {
            Some(near) => format!("did you mean {}?", quoted(near)),
            None if self.ordered.is_empty() => {
                "no segments are defined; add them under a top-level `segments:`".to_owned()
            }
            None => {
                let listed: Vec<String> = names.take(8).map(quoted).collect();
                let more = if self.ordered.len() > 8 { ", ..." } else { "" };
                format!("defined segments are {}{more}", listed.join(", "))
            }
        };
        format!("no segment named {}; {hint}", quoted(name))
    }
}

impl Checks<'_> {
    /// `segments:`: optional; names unique, each with at least one valid source.
    pub(super) fn segments(&mut self, raw: Option<Vec<RawSegment>>) -> CheckedSegments {
        let mut names = SegmentNames::default();
        let raw = raw.unwrap_or_default();
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (i, segment) in raw.into_iter().enumerate() {
            let path = format!("segments[{i}]");
            let name = self.required(segment.name.as_deref(), &path, "name");
            if let Some(name) = name {
                match names.find(name) {
                    Some(first) => self.report(
                        &format!("{path}.name"),
                        format!(
                            "duplicate segment name {}; segments[{first}] has it too",
                            quoted(name)
                        ),
                    ),
                    None => {
                        names.index.insert(name.to_owned(), i);
                        names.ordered.push(name.to_owned());
                    }
                }
            }
            let name = name.map(str::to_owned);
            let sources = self.sources(segment.sources, &path);
            built = built
                .zip(name.zip(sources))
                .map(|(mut all, (name, sources))| {
                    all.push(Segment { name, sources });
                    all
                });
        }
        CheckedSegments { built, names }
    }

    /// A segment's `sources`: at least one address or prefix, each canonical.
    fn sources(&mut self, raw: Option<Vec<String>>, path: &str) -> Option<Vec<Prefix>> {
        let Some(raw) = raw else {
            self.missing(
                path,
                "sources",
                "a segment needs at least one address or prefix, like 10.1.0.0/16",
            );
            return None;
        };
        if raw.is_empty() {
            self.report(
                &format!("{path}.sources"),
                "expected at least one address or prefix, found none",
            );
            return None;
        }
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (j, text) in raw.iter().enumerate() {
            let prefix = self.prefix(text, &format!("{path}.sources[{j}]"));
            built = built.zip(prefix).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        built
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
            let found = segments.find(name);
            if found.is_none() {
                self.report(&format!("{path}[{k}]"), segments.unknown(name));
            }
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
