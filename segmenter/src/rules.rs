//! What a [`crate::Table`] is compiled from: the segments, and for each listener who may
//! connect and who may use each of its routes. Usually taken from a validated config with
//! [`Rules::from_config`]; tests, benches and fuzz targets build it directly.

use augur_config::{Config, ListenerKind, Segment, SegmentDefault, SegmentMode};

/// Segments and the listeners that use them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    /// What a listener without `allow` admits.
    pub default: SegmentDefault,
    /// The segments; `allow` lists refer to them by index.
    pub segments: Vec<Segment>,
    /// The listeners; decisions refer to them by index.
    pub listeners: Vec<ListenerRules>,
}

/// One listener's segmentation.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerRules {
    /// Listener name (keys its counters and learned flows across reloads).
    pub name: String,
    /// Segments admitted at accept (indices into `Rules::segments`; out-of-range ones are
    /// ignored); `None` admits what `Rules::default` says.
    pub allow: Option<Vec<usize>>,
    /// What happens to a source not admitted.
    pub mode: SegmentMode,
    /// Per route, in order, the segments it narrows to (`None`: no narrowing).
    pub routes: Vec<Option<Vec<usize>>>,
}

impl Rules {
    /// The segmentation of a validated config.
    pub fn from_config(config: &Config) -> Rules {
        Rules {
            default: config.segmentation.default,
            segments: config.segments.clone(),
            listeners: config
                .listeners
                .iter()
                .map(|listener| ListenerRules {
                    name: listener.name.clone(),
                    allow: listener.allow.clone(),
                    mode: listener.segment_mode,
                    routes: match &listener.kind {
                        ListenerKind::Http { routes } | ListenerKind::Https { routes, .. } => {
                            routes.iter().map(|route| route.allow.clone()).collect()
                        }
                        ListenerKind::Tcp { .. } => Vec::new(),
                    },
                })
                .collect(),
        }
    }
}
