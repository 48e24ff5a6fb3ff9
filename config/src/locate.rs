//! Where each value is in the file: a map from a path like `listeners[0].routes[1].upstream`
//! (the format `serde_path_to_error` prints) to its line and column.
//!
//! serde only tells us where the *first* error is; validation finds many errors after the
//! fact and needs to point at each one, so the document is walked once more with
//! yaml-rust2's event parser, which reports a mark for every node.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Nesting deeper than this is not indexed: the schema is six levels deep, and indexing
/// every node of a hostile `[[[[...` would cost memory quadratic in its depth.
const MAX_INDEXED_DEPTH: usize = 16;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// The start of the file, where problems with the document as a whole are reported.
    pub const START: Position = Position { line: 1, column: 1 };

    fn from_marker(mark: Marker) -> Self {
        // yaml-rust2 counts lines from 1 but columns from 0 (see the test below).
        Position {
            line: mark.line().max(1),
            column: mark.col() + 1,
        }
    }
}

/// Positions of the values and mapping keys of the first document of a YAML text.
#[derive(Debug, Default)]
pub struct Positions {
    /// Where each value starts; a block mapping starts at its first key.
    values: HashMap<String, Position>,
    /// Where each mapping key is, by the path of its value.
    keys: HashMap<String, Position>,
}

impl Positions {
    /// Index `text`. Never fails: a syntax error just ends the index where it occurred.
    pub fn index(text: &str) -> Self {
        let mut indexer = Indexer::default();
        let mut parser = Parser::new_from_str(text);
        // Pull events one at a time rather than calling `Parser::load`, which recurses once
        // per nesting level and so could overflow the stack on hostile input.
        while !indexer.done {
            match parser.next_token() {
                Ok((event, mark)) => indexer.on_event(event, mark),
                Err(_) => break,
            }
        }
        indexer.positions
    }

    /// Where the value at `path` starts, if the path exists.
    pub fn value(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// Where the key of the mapping entry at `path` is, if it exists.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied()
    }

    /// The value at `path`, or else its nearest ancestor that exists (so a missing key is
    /// reported at the mapping that lacks it), or else the start of the file.
    pub fn nearest(&self, path: &str) -> Position {
        let mut path = path;
        loop {
            if let Some(position) = self.value(path) {
                return position;
            }
            if path.is_empty() {
                return Position::START;
            }
            path = parent(path);
        }
    }
}

/// `a.b[2]` -> `a.b` -> `a` -> ``.
pub fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(at) => &path[..at],
        None => "",
    }
}

/// Builds the path of a child from its parent's path.
fn child_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// An open collection while walking the event stream. `path` is `None` inside mapping keys
/// that are themselves collections, and below `MAX_INDEXED_DEPTH`.
#[derive(Debug)]
enum Frame {
    Mapping {
        path: Option<String>,
        /// The key whose value comes next, or `None` while a key is expected.
        key: Option<KeySlot>,
        seen_first_key: bool,
    },
    Sequence {
        path: Option<String>,
        next_index: usize,
    },
}

/// The key just read in a mapping: its path, if it was a scalar we can index.
#[derive(Debug)]
struct KeySlot {
    path: Option<String>,
}

/// Receives parser events and records positions.
#[derive(Debug, Default)]
struct Indexer {
    positions: Positions,
    stack: Vec<Frame>,
    documents: usize,
    done: bool,
}

impl Indexer {
    /// Decides the path of the node that starts now, updating the enclosing frame.
    fn place_node(&mut self, event: &Event, position: Position) -> Option<String> {
        let depth = self.stack.len();
        let Some(frame) = self.stack.last_mut() else {
            return Some(String::new());
        };
        match frame {
            Frame::Sequence { path, next_index } => {
                let index = *next_index;
                *next_index += 1;
                let parent = path.as_deref()?;
                (depth < MAX_INDEXED_DEPTH).then(|| format!("{parent}[{index}]"))
            }
            Frame::Mapping {
                key: key @ Some(_), ..
            } => key.take().and_then(|slot| slot.path),
            Frame::Mapping {
                path,
                key,
                seen_first_key,
            } => {
                // This node is a key; nothing inside a key is indexed.
                let key_path = match (event, path.as_deref()) {
                    (Event::Scalar(text, ..), Some(parent)) if depth < MAX_INDEXED_DEPTH => {
                        Some(child_key(parent, text))
                    }
                    _ => None,
                };
                if let Some(key_path) = &key_path {
                    self.positions.keys.insert(key_path.clone(), position);
                }
                if !*seen_first_key {
                    *seen_first_key = true;
                    // A block mapping's start mark is at its first `:`; point at the first
                    // key instead, which is also where a flow mapping's `{` comes first.
                    if let Some(mapping) = path.as_ref() {
                        let start = self.positions.values.entry(mapping.clone());
                        let start = start.or_insert(position);
                        *start = (*start).min(position);
                    }
                }
                *key = Some(KeySlot { path: key_path });
                None
            }
        }
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let position = Position::from_marker(mark);
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                // Only the first document is a config; serde rejects any second one.
                self.done = self.documents > 1;
            }
            Event::StreamEnd => self.done = true,
            Event::Scalar(..) | Event::Alias(_) => {
                if let Some(path) = self.place_node(&event, position) {
                    self.positions.values.insert(path, position);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.place_node(&event, position);
                if let Some(path) = &path {
                    self.positions.values.insert(path.clone(), position);
                }
                self.stack.push(match event {
                    Event::MappingStart(..) => Frame::Mapping {
                        path,
                        key: None,
                        seen_first_key: false,
                    },
                    _ => Frame::Sequence {
                        path,
                        next_index: 0,
                    },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn marker_lines_are_one_based_and_columns_zero_based() {
        let mut parser = Parser::new_from_str("a:\n  bc: d\n");
        let mut marks = Vec::new();
        while let Ok((event, mark)) = parser.next_token() {
            if let Event::Scalar(text, ..) = &event {
                marks.push((text.clone(), mark.line(), mark.col()));
            }
            if event == Event::StreamEnd {
                break;
            }
        }
        assert_eq!(
            marks,
            [("a".into(), 1, 0), ("bc".into(), 2, 2), ("d".into(), 2, 6)]
        );
    }

    #[test]
    fn block_and_flow_positions() {
        let text = "\
listeners:
  - name: web
    routes: [ { match: { path_prefix: / }, upstream: api } ]
  - {a: 1}
upstreams:
  - - 1
";
        let positions = Positions::index(text);
        assert_eq!(positions.value(""), at(1, 1));
        assert_eq!(positions.key("listeners"), at(1, 1));
        assert_eq!(positions.value("listeners"), at(2, 3));
        assert_eq!(positions.value("listeners[0]"), at(2, 5));
        assert_eq!(positions.key("listeners[0].name"), at(2, 5));
        assert_eq!(positions.value("listeners[0].name"), at(2, 11));
        assert_eq!(positions.value("listeners[0].routes"), at(3, 13));
        assert_eq!(positions.value("listeners[0].routes[0]"), at(3, 15));
        assert_eq!(positions.value("listeners[0].routes[0].match"), at(3, 24));
        assert_eq!(
            positions.value("listeners[0].routes[0].match.path_prefix"),
            at(3, 39)
        );
        assert_eq!(
            positions.value("listeners[0].routes[0].upstream"),
            at(3, 54)
        );
        assert_eq!(positions.value("listeners[1]"), at(4, 5));
        assert_eq!(positions.key("listeners[1].a"), at(4, 6));
        assert_eq!(positions.value("upstreams[0][0]"), at(6, 7));
        assert_eq!(positions.value("nope"), None);
    }

    #[test]
    fn nearest_falls_back_to_ancestors() {
        let positions = Positions::index("listeners:\n  - name: web\n");
        assert_eq!(
            positions.nearest("listeners[0].routes[3].upstream"),
            Position { line: 2, column: 5 }
        );
        assert_eq!(positions.nearest("upstreams"), Position::START);
        assert_eq!(parent("a.b[2]"), "a.b");
        assert_eq!(parent("a.b"), "a");
        assert_eq!(parent("a"), "");
    }

    #[test]
    fn complex_keys_aliases_and_later_documents() {
        let text = "? [a, b]\n: 1\nx: &anchor 2\ny: *anchor\n---\nz: 3\n";
        let positions = Positions::index(text);
        // An anchored value is located at the value itself, after its `&anchor`.
        assert_eq!(positions.value("x"), at(3, 12));
        assert_eq!(positions.value("y"), at(4, 4));
        assert_eq!(positions.value("z"), None);
    }

    #[test]
    fn hostile_input_is_bounded() {
        let deep = "[".repeat(100_000);
        let positions = Positions::index(&deep);
        assert!(positions.values.len() <= MAX_INDEXED_DEPTH + 1);
        Positions::index("\u{0}\u{feff}: - : [ } ] {");
        Positions::index("a: b\n\tc: d\n");
    }
}
