//! Step 1 of 3: YAML text to [`RawConfig`], with serde's first error turned into an
//! [`Issue`] that says what was expected, what was found and, for a misspelt key or value,
//! what was probably meant.

use serde_path_to_error::Segment;

use crate::issue::{shorten, Anchor, Issue};
use crate::locate::{parent, Position};
use crate::raw::RawConfig;
use crate::suggest::{nearest, one_of};

/// Longest serde message kept, in characters; longer ones are cut (they can quote a value).
const MAX_MESSAGE: usize = 240;

/// Most unclosed `[` and `{` accepted. The schema needs six; libyaml's scanner slows
/// quadratically with flow nesting, so hostile nesting is refused before it gets there.
const MAX_FLOW_DEPTH: usize = 64;

/// Deserializes `text` into the raw schema. An empty document is an error.
pub fn parse_raw(text: &str) -> Result<RawConfig, Issue> {
    check_flow_depth(text)?;
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Option<RawConfig>>(deserializer) {
        Ok(Some(raw)) => Ok(raw),
        Ok(None) => Err(Issue {
            path: String::new(),
            message: "the file is empty; expected a mapping with `listeners` and `upstreams`"
                .into(),
            anchor: Anchor::At(Position::START),
        }),
        Err(error) => Err(explain(&error, text)),
    }
}

/// Refuses text with more than `MAX_FLOW_DEPTH` unclosed brackets. Brackets are counted
/// everywhere, quoted or commented out too: no real config comes near the limit, and a
/// count that ignores YAML syntax is one that cannot be fooled by it.
fn check_flow_depth(text: &str) -> Result<(), Issue> {
    let mut depth = 0usize;
    let mut position = Position::START;
    for c in text.chars() {
        match c {
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(Issue {
                        path: String::new(),
                        message: format!(
                            "expected at most {MAX_FLOW_DEPTH} nested `[` and `{{`, found more"
                        ),
                        anchor: Anchor::At(position),
                    });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c == '\n' {
            position.line += 1;
            position.column = 1;
        } else {
            position.column += 1;
        }
    }
    Ok(())
}

/// Turns serde's error into an issue with our path format and wording.
fn explain(error: &serde_path_to_error::Error<serde_yaml::Error>, text: &str) -> Issue {
    let path = path_string(error.path());
    let location = error.inner().location().map(|l| Position {
        line: l.line().max(1),
        column: l.column().max(1),
    });
    let bare = strip_decorations(&error.inner().to_string(), &path, location);
    let mut issue = reword(&path, &bare);
    if let Some(position) = location {
        if char_at(text, position) == Some('\t') {
            issue
                .message
                .push_str("; YAML is indented with spaces, not tabs");
        }
    }
    if issue.anchor == Anchor::Value {
        if let Some(position) = location {
            issue.anchor = Anchor::At(position);
        }
    }
    issue.message = shorten(&issue.message, MAX_MESSAGE);
    issue
}

/// The character at a 1-based line and column.
fn char_at(text: &str, position: Position) -> Option<char> {
    let line = text.lines().nth(position.line.checked_sub(1)?)?;
    line.chars().nth(position.column.checked_sub(1)?)
}

/// `listeners[0].bind`; empty (not `.`) for the document itself.
fn path_string(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// Removes what serde_yaml adds around the message: its own copy of the path in front
/// (`listeners[0]: `) and the position (` at line 3 column 5`), which we print our way.
fn strip_decorations(message: &str, path: &str, location: Option<Position>) -> String {
    let mut message = message.to_owned();
    if let Some(Position { line, column }) = location {
        message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
    }
    let mut prefix = path;
    while !prefix.is_empty() {
        if let Some(rest) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(": "))
        {
            return rest.to_owned();
        }
        prefix = parent(prefix);
    }
    message
}

/// The words between backticks: `` unknown field `bnd`, expected `a` or `b` `` gives
/// `bnd`, `a`, `b`.
fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

/// Rewords serde's standard messages.
fn reword(path: &str, message: &str) -> Issue {
    let value = |message: String| Issue::at_value(path, message);
    if message.starts_with("unknown field `") || message.starts_with("unknown variant `") {
        let what = if message.starts_with("unknown field") {
            "key"
        } else {
            "value"
        };
        let words = backticked(message);
        let (found, expected) = words.split_first().unwrap_or((&"", &[]));
        let hint = match nearest(found, expected.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None if *found == "<<" => "YAML merge keys are not supported".to_owned(),
            None if expected.is_empty() => format!("no {what}s are allowed here"),
            None => format!("expected {}", one_of(expected)),
        };
        let message = format!("unknown {what} `{found}`; {hint}");
        return Issue {
            anchor: if what == "key" {
                Anchor::Key
            } else {
                Anchor::Value
            },
            ..value(message)
        };
    }
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let path = if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        };
        return Issue {
            path,
            message: format!("duplicate key `{key}`"),
            anchor: Anchor::Key,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or_default();
        return value(format!("missing required key `{key}`"));
    }
    if message.starts_with("deserializing from YAML containing more than one document") {
        return value("expected one YAML document, found more (separated by `---`)".to_owned());
    }
    for kind in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(kind)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            let expected = match expected {
                "i64" => "an integer",
                "f64" => "a number",
                other => other,
            };
            return value(format!("expected {expected}, found {found}"));
        }
    }
    value(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(text: &str) -> Issue {
        parse_raw(text).expect_err("should not parse")
    }

    fn at(line: usize, column: usize) -> Anchor {
        Anchor::At(Position { line, column })
    }

    #[test]
    fn issues_have_a_path_a_message_and_a_place() {
        let policies = "`round_robin`, `least_conn`, `random`, `p2c_least_request`, `p2c_peak_ewma` or `predictive`";
        let expected_policy = format!("unknown value `fastest`; expected {policies}");
        let sections = "`server`, `admin`, `predictor`, `events`, `segments`, `segmentation`, `listeners`, `upstreams` or `tunnels`";
        let expected_section = format!("unknown key `qqqqqq`; expected {sections}");
        // Text, then the issue's path and message, and where it points when that is checked.
        let cases: [(&str, &str, &str, Option<Anchor>); 10] = [
            (
                "listeners:\n  - name: web\n    bnd: x\n",
                "listeners[0].bnd",
                "unknown key `bnd`; did you mean `bind`?",
                Some(Anchor::Key),
            ),
            (
                "admin: { zzz: 1 }\n",
                "admin.zzz",
                "unknown key `zzz`; expected `bind`",
                None,
            ),
            ("qqqqqq: 1\n", "qqqqqq", &expected_section, None),
            (
                "listeners:\n  - name: web\n    protocol: htp\n",
                "listeners[0].protocol",
                "unknown value `htp`; did you mean `http`?",
                Some(at(3, 15)),
            ),
            (
                "upstreams: [ { policy: p2c_peak_ewm } ]\n",
                "upstreams[0].policy",
                "unknown value `p2c_peak_ewm`; did you mean `p2c_peak_ewma`?",
                None,
            ),
            (
                "upstreams: [ { policy: fastest } ]\n",
                "upstreams[0].policy",
                &expected_policy,
                None,
            ),
            (
                "listeners: [ { <<: { name: x } } ]\n",
                "listeners[0].<<",
                "unknown key `<<`; YAML merge keys are not supported",
                None,
            ),
            (
                "listeners: []\n---\nupstreams: []\n",
                "",
                "expected one YAML document, found more (separated by `---`)",
                None,
            ),
            (
                "listeners:\n  - name: web\n    name: web2\n",
                "listeners[0].name",
                "duplicate key `name`",
                Some(Anchor::Key),
            ),
            (
                "listeners:\n  - name: [1]\n",
                "listeners[0].name",
                "expected a string, found sequence",
                Some(at(2, 11)),
            ),
        ];
        for (text, path, message, anchor) in cases {
            let found = issue(text);
            assert_eq!(
                (found.path.as_str(), found.message.as_str()),
                (path, message)
            );
            if let Some(anchor) = anchor {
                assert_eq!(found.anchor, anchor, "{text:?}");
            }
        }
        let found = issue("upstreams:\n - retries: 99999999999999999999999\n");
        assert_eq!(found.path, "upstreams[0].retries");
        assert!(found
            .message
            .starts_with("expected an integer, found integer"));
    }

    #[test]
    fn empty_and_non_mapping_documents() {
        for text in ["", "# only a comment\n", "~\n", "---\n"] {
            let found = issue(text);
            assert_eq!(found.anchor, at(1, 1), "{text:?}");
            assert!(found.message.starts_with("the file is empty"), "{text:?}");
        }
        for text in ["5", "[1, 2]", "\"text\"\n"] {
            let found = issue(text);
            assert_eq!(found.path, "");
            assert_eq!(found.anchor, at(1, 1), "{text:?}");
            assert!(found.message.starts_with("expected a mapping"), "{text:?}");
        }
    }

    #[test]
    fn syntax_errors_keep_the_parser_position() {
        let found = issue("listeners:\n  - name: web\n   bad: [\n");
        assert_eq!(found.anchor, at(3, 4));
        assert!(
            !found.message.contains("line 3 column 4"),
            "{}",
            found.message
        );
    }

    #[test]
    fn deep_flow_nesting_is_refused_early() {
        let text = format!("a:\n  {}", "[".repeat(10_000));
        let found = issue(&text);
        assert_eq!(found.anchor, at(2, 3 + MAX_FLOW_DEPTH));
        assert_eq!(
            found.message,
            "expected at most 64 nested `[` and `{`, found more"
        );
        let fine = format!("{}{}", "[{".repeat(32), "}]".repeat(32));
        assert!(!issue(&fine).message.contains("nested"));
    }

    #[test]
    fn tabs_get_a_hint() {
        let found = issue("listeners:\n\t- name: web\n");
        assert_eq!(found.anchor, at(2, 1));
        assert!(found.message.ends_with("not tabs"), "{}", found.message);
    }

    #[test]
    fn long_values_are_not_echoed_whole() {
        let text = format!("listeners: \"{}\"\n", "x".repeat(10_000));
        assert!(issue(&text).message.len() < MAX_MESSAGE + 10);
    }
}
