//! ORCA load reports: parsing the `endpoint-load-metrics` response header a backend sends.
//!
//! The bytes come from backends, so they are untrusted: `parse` never panics, bounds what it
//! reads, and rejects anything it cannot read exactly rather than guessing. Two forms are read
//! (the header value starts with the format's name, then a space):
//!
//! - `TEXT cpu_utilization=0.3, mem_utilization=0.8, named_metrics.foo=123`: comma-separated
//!   `key=value` items. Whitespace around items and around `=` is ignored, and so are empty
//!   items (an HTTP list may carry them).
//! - `JSON {"cpu_utilization": 0.3, "named_metrics": {"foo": 123}}`: one JSON object with the
//!   same fields, `named_metrics` as a nested object of numbers. Field names may also be spelt
//!   in lowerCamelCase (`cpuUtilization`, `namedMetrics`), as the proto3 JSON mapping that
//!   Envoy's parser uses accepts them.
//!
//! `BIN <base64 protobuf>` is recognised and refused with `Unsupported("BIN")`.
//!
//! What is rejected, and how that compares with Envoy's `source/common/orca/orca_parser.cc`:
//!
//! - As Envoy does: an unknown format word; in TEXT, an item without `=`, an empty key or value,
//!   a duplicate key, a value that is not a number, NaN or infinity, an empty named metric name,
//!   and any name other than the five fields and `named_metrics.<name>` (so the deprecated
//!   `rps`, `utilization` and `request_cost` too). Like Envoy we split on `=` (Envoy used `:`
//!   until its PR #37724 aligned it with the ORCA design document).
//! - Stricter than Envoy: negative values, which the `OrcaLoadReport` proto forbids
//!   (`gte = 0`) for the five fields but Envoy's parser does not check; we refuse them for named
//!   metrics too, so the predictor only ever sees figures >= 0. In JSON, Envoy's protobuf parser
//!   also takes quoted numbers, `null` and the deprecated fields; we take plain numbers only.
//!   Named metric names must be 1..=`MAX_NAME_LEN` printable ASCII characters other than `,`
//!   and `=`, so that every accepted report can be written back as TEXT (`to_text`).
//! - Bounds of our own: a value longer than `MAX_HEADER_LEN` bytes, more than `MAX_NAMED`
//!   named metrics, bytes that are not UTF-8.
//! - Utilisations above 1.0 are kept as sent, neither capped nor refused. That is what Envoy
//!   does: its parser copies them through, and the proto says cpu and application utilisation
//!   may exceed 1.0 past a reporter's soft limit. (The proto's `lte = 1` on mem_utilization is
//!   an annotation Envoy never enforces.) Capping, if wanted, belongs to the routing formula.
//!
//! The JSON reader is our own rather than serde_json, for three reasons: serde_json's `Value`
//! keeps the last of duplicate keys silently, and catching them needs a `serde` visitor (a
//! second dependency); without its `float_roundtrip` feature serde_json may parse a float one
//! ulp off, which would break exact round trips; and the grammar needed here is one object of
//! numbers, one level deep, which is small enough to read strictly by hand.

use std::fmt;

/// Figures of one ORCA load report. Utilisations are fractions (0.0 = idle, 1.0 = full; application_utilization may exceed 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// CPU in use as a fraction of what is available; may exceed 1.0 past a soft limit.
    pub cpu_utilization: Option<f64>,
    /// Memory in use as a fraction of what is available.
    pub mem_utilization: Option<f64>,
    /// The backend's own utilisation figure; may exceed 1.0 past a soft limit.
    pub application_utilization: Option<f64>,
    /// Requests per second the backend is serving.
    pub rps_fractional: Option<f64>,
    /// Errors per second the backend is serving.
    pub eps: Option<f64>,
    /// named_metrics.* in the order given (at most MAX_NAMED entries).
    pub named_metrics: Vec<(String, f64)>,
}

/// Most named metrics one report may carry.
pub const MAX_NAMED: usize = 16;
/// Longest header value read, in bytes.
pub const MAX_HEADER_LEN: usize = 4096;
/// Longest named metric name, in bytes; keeps `to_text` of any report within `MAX_HEADER_LEN`.
pub const MAX_NAME_LEN: usize = 128;

/// How much of an offending key or value an error quotes.
const EXCERPT_CHARS: usize = 40;
const NAMED_PREFIX: &str = "named_metrics.";

/// Why a header was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadReportError {
    /// The value is longer than `MAX_HEADER_LEN` bytes.
    TooLong { len: usize },
    /// The value is not UTF-8; `offset` is the first bad byte.
    NotUtf8 { offset: usize },
    /// The value does not start with `TEXT`, `JSON` or `BIN` (the word found, shortened).
    UnknownFormat(String),
    /// A format augur recognises but does not read.
    Unsupported(&'static str),
    /// A TEXT item that is not `key=value` with both sides non-empty.
    MalformedPair(String),
    /// The JSON form breaks JSON syntax or the expected shape at byte `offset` of the header.
    InvalidJson {
        offset: usize,
        expected: &'static str,
    },
    /// A key that is none of the five fields nor a named metric.
    UnknownField(String),
    /// A field or named metric given twice.
    DuplicateField(String),
    /// A named metric with an empty name.
    EmptyName,
    /// A named metric name that is too long or has a character other than printable ASCII
    /// without `,` and `=`.
    InvalidName(String),
    /// A value that does not parse as a number.
    InvalidNumber { field: String, value: String },
    /// A value that is NaN.
    NotANumber { field: String },
    /// A value that is infinite, or too large to be a finite f64.
    Infinite { field: String },
    /// A value below zero.
    Negative { field: String, value: f64 },
    /// More than `MAX_NAMED` named metrics.
    TooManyNamed,
}

impl fmt::Display for LoadReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadReportError::*;
        match self {
            TooLong { len } => {
                write!(
                    f,
                    "load report header is {len} bytes, expected at most {MAX_HEADER_LEN}"
                )
            }
            NotUtf8 { offset } => write!(f, "load report header is not UTF-8 at byte {offset}"),
            UnknownFormat(word) => write!(
                f,
                "unknown load report format {word:?}, expected TEXT, JSON or BIN"
            ),
            Unsupported(format) => write!(f, "load report format {format} is not supported"),
            MalformedPair(item) => {
                write!(
                    f,
                    "expected key=value with both sides non-empty, found {item:?}"
                )
            }
            InvalidJson { offset, expected } => {
                write!(
                    f,
                    "invalid JSON load report at byte {offset} of the header: expected {expected}"
                )
            }
            UnknownField(key) => write!(
                f,
                "unknown load report field {key:?}, expected cpu_utilization, mem_utilization, \
                 application_utilization, rps_fractional, eps or named_metrics.<name>"
            ),
            DuplicateField(key) => write!(f, "load report field {key:?} is given twice"),
            EmptyName => write!(f, "named metric name is empty"),
            InvalidName(name) => write!(
                f,
                "named metric name {name:?} is invalid, expected 1 to {MAX_NAME_LEN} printable \
                 ASCII characters other than ',' and '='"
            ),
            InvalidNumber { field, value } => {
                write!(f, "{field}: expected a number, found {value:?}")
            }
            NotANumber { field } => write!(f, "{field}: expected a number, found NaN"),
            Infinite { field } => write!(f, "{field}: expected a finite number, found infinity"),
            Negative { field, value } => {
                write!(f, "{field}: expected a value >= 0, found {value}")
            }
            TooManyNamed => write!(f, "more than {MAX_NAMED} named metrics"),
        }
    }
}

impl std::error::Error for LoadReportError {}

/// Parses one `endpoint-load-metrics` header value.
pub fn parse(header_value: &[u8]) -> Result<LoadReport, LoadReportError> {
    if header_value.len() > MAX_HEADER_LEN {
        return Err(LoadReportError::TooLong {
            len: header_value.len(),
        });
    }
    let value = std::str::from_utf8(header_value).map_err(|e| LoadReportError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let leading = value.len() - value.trim_start_matches(is_space).len();
    let value = value.trim_matches(is_space);
    let at = value.find(is_space).unwrap_or(value.len());
    let (format, body) = value.split_at(at);
    match format {
        "TEXT" => parse_text(body),
        "JSON" => parse_json(body, leading + at),
        "BIN" => Err(LoadReportError::Unsupported("BIN")),
        other => Err(LoadReportError::UnknownFormat(excerpt(other))),
    }
}

/// Writes a report in the TEXT form, which `parse` reads back equal.
pub fn to_text(report: &LoadReport) -> String {
    let mut out = String::from("TEXT ");
    let mut first = true;
    let mut item = |out: &mut String, prefix: &str, key: &str, value: f64| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(prefix);
        out.push_str(key);
        out.push('=');
        push_number(out, value);
    };
    for field in Field::ALL {
        if let Some(value) = *report.slot(field) {
            item(&mut out, "", field.name(), value);
        }
    }
    for (name, value) in &report.named_metrics {
        item(&mut out, NAMED_PREFIX, name, *value);
    }
    out
}

impl LoadReport {
    /// The single utilisation figure routing uses: application_utilization if present and > 0, else cpu_utilization, else None.
    pub fn utilization(&self) -> Option<f64> {
        match self.application_utilization {
            Some(app) if app > 0.0 => Some(app),
            _ => self.cpu_utilization,
        }
    }

    fn slot(&self, field: Field) -> &Option<f64> {
        match field {
            Field::Cpu => &self.cpu_utilization,
            Field::Mem => &self.mem_utilization,
            Field::Application => &self.application_utilization,
            Field::Rps => &self.rps_fractional,
            Field::Eps => &self.eps,
        }
    }

    fn slot_mut(&mut self, field: Field) -> &mut Option<f64> {
        match field {
            Field::Cpu => &mut self.cpu_utilization,
            Field::Mem => &mut self.mem_utilization,
            Field::Application => &mut self.application_utilization,
            Field::Rps => &mut self.rps_fractional,
            Field::Eps => &mut self.eps,
        }
    }

    /// Sets a field once; a second time is a duplicate.
    fn set(&mut self, field: Field, value: f64) -> Result<(), LoadReportError> {
        let slot = self.slot_mut(field);
        if slot.is_some() {
            return Err(LoadReportError::DuplicateField(field.name().to_owned()));
        }
        *slot = Some(value);
        Ok(())
    }

    /// Adds a named metric whose name `check_name` has passed, if it is new and fits.
    fn add_named(&mut self, name: &str, value: f64) -> Result<(), LoadReportError> {
        if self.named_metrics.iter().any(|(n, _)| n == name) {
            return Err(LoadReportError::DuplicateField(format!(
                "{NAMED_PREFIX}{name}"
            )));
        }
        if self.named_metrics.len() == MAX_NAMED {
            return Err(LoadReportError::TooManyNamed);
        }
        self.named_metrics.push((name.to_owned(), value));
        Ok(())
    }
}

/// The five fixed fields of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Cpu,
    Mem,
    Application,
    Rps,
    Eps,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Cpu,
        Field::Mem,
        Field::Application,
        Field::Rps,
        Field::Eps,
    ];

    /// The proto field name, which TEXT uses.
    fn name(self) -> &'static str {
        match self {
            Field::Cpu => "cpu_utilization",
            Field::Mem => "mem_utilization",
            Field::Application => "application_utilization",
            Field::Rps => "rps_fractional",
            Field::Eps => "eps",
        }
    }

    /// The proto3 JSON name, which JSON may use instead.
    fn json_name(self) -> &'static str {
        match self {
            Field::Cpu => "cpuUtilization",
            Field::Mem => "memUtilization",
            Field::Application => "applicationUtilization",
            Field::Rps => "rpsFractional",
            Field::Eps => "eps",
        }
    }

    fn from_name(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == key)
    }

    fn from_json_name(key: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.name() == key || f.json_name() == key)
    }
}

fn parse_text(body: &str) -> Result<LoadReport, LoadReportError> {
    let mut report = LoadReport::default();
    for item in body.split(',') {
        let item = item.trim_matches(is_space);
        if item.is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(LoadReportError::MalformedPair(excerpt(item)));
        };
        let (key, value) = (key.trim_matches(is_space), value.trim_matches(is_space));
        if key.is_empty() || value.is_empty() {
            return Err(LoadReportError::MalformedPair(excerpt(item)));
        }
        if let Some(name) = key.strip_prefix(NAMED_PREFIX) {
            // The name is checked before the value so that a bad name is the error reported.
            check_name(name)?;
            let value = text_number(key, value)?;
            report.add_named(name, value)?;
        } else if let Some(field) = Field::from_name(key) {
            report.set(field, text_number(key, value)?)?;
        } else {
            return Err(LoadReportError::UnknownField(excerpt(key)));
        }
    }
    Ok(report)
}

/// Reads a TEXT value as an f64 and checks it.
fn text_number(key: &str, value: &str) -> Result<f64, LoadReportError> {
    match value.parse::<f64>() {
        Ok(number) => check_value(key, number),
        Err(_) => Err(LoadReportError::InvalidNumber {
            field: excerpt(key),
            value: excerpt(value),
        }),
    }
}

/// Refuses NaN, infinities and negatives, and folds -0 into 0 so it prints as `0`.
fn check_value(key: &str, value: f64) -> Result<f64, LoadReportError> {
    if value.is_nan() {
        Err(LoadReportError::NotANumber {
            field: excerpt(key),
        })
    } else if value.is_infinite() {
        Err(LoadReportError::Infinite {
            field: excerpt(key),
        })
    } else if value < 0.0 {
        Err(LoadReportError::Negative {
            field: excerpt(key),
            value,
        })
    } else if value == 0.0 {
        Ok(0.0)
    } else {
        Ok(value)
    }
}

/// A named metric name must survive a trip through TEXT: no separators, no whitespace.
fn check_name(name: &str) -> Result<(), LoadReportError> {
    if name.is_empty() {
        return Err(LoadReportError::EmptyName);
    }
    let printable = |b: &u8| b.is_ascii_graphic() && *b != b',' && *b != b'=';
    if name.len() > MAX_NAME_LEN || !name.bytes().all(|b| printable(&b)) {
        return Err(LoadReportError::InvalidName(excerpt(name)));
    }
    Ok(())
}

/// Plain notation unless it is longer than exponent notation can ever be (23 characters),
/// so 1e300 does not spell out 300 zeros. Both print the shortest digits that read back as
/// the same f64, so the value survives the trip exactly.
fn push_number(out: &mut String, value: f64) {
    let plain = value.to_string();
    if plain.len() <= 24 {
        out.push_str(&plain);
    } else {
        out.push_str(&format!("{value:e}"));
    }
}

/// HTTP's optional whitespace, plus the other ASCII spaces a sloppy backend might send.
fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// The start of an untrusted string, for an error message.
fn excerpt(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Reads the JSON form; `base` is where `body` starts in the header, for error offsets.
fn parse_json(body: &str, base: usize) -> Result<LoadReport, LoadReportError> {
    let mut json = Json {
        text: body,
        pos: 0,
        base,
    };
    let mut report = LoadReport::default();
    let mut seen_named = false;
    json.open_object()?;
    let mut first = true;
    while let Some(key) = json.next_key(&mut first)? {
        if key == "named_metrics" || key == "namedMetrics" {
            if seen_named {
                return Err(LoadReportError::DuplicateField("named_metrics".to_owned()));
            }
            seen_named = true;
            json.open_object()?;
            let mut first_name = true;
            while let Some(name) = json.next_key(&mut first_name)? {
                check_name(&name)?;
                let value = json.number(&format!("{NAMED_PREFIX}{name}"))?;
                report.add_named(&name, value)?;
            }
        } else if let Some(field) = Field::from_json_name(&key) {
            let value = json.number(field.name())?;
            report.set(field, value)?;
        } else {
            return Err(LoadReportError::UnknownField(excerpt(&key)));
        }
    }
    json.skip_space();
    if json.pos != json.text.len() {
        return Err(json.error("the end of the header after the object"));
    }
    Ok(report)
}

/// A strict reader for the one shape the JSON form has: an object whose values are numbers
/// or one nested object of numbers. Works on bytes but only ever splits `text` at ASCII
/// bytes, so every slice it takes is on a char boundary.
struct Json<'a> {
    text: &'a str,
    pos: usize,
    base: usize,
}

impl Json<'_> {
    fn error(&self, expected: &'static str) -> LoadReportError {
        LoadReportError::InvalidJson {
            offset: self.base + self.pos,
            expected,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips space, then consumes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn open_object(&mut self) -> Result<(), LoadReportError> {
        if self.eat(b'{') {
            Ok(())
        } else {
            Err(self.error("'{'"))
        }
    }

    /// The next key of the object being read and its `:`, or None at its closing brace.
    /// `first` is true until the object's first key has been read.
    fn next_key(&mut self, first: &mut bool) -> Result<Option<String>, LoadReportError> {
        if self.eat(b'}') {
            return Ok(None);
        }
        if !std::mem::take(first) && !self.eat(b',') {
            return Err(self.error("',' or '}'"));
        }
        self.skip_space();
        let key = self.string()?;
        if !self.eat(b':') {
            return Err(self.error("':'"));
        }
        Ok(Some(key))
    }

    /// A JSON string, unescaped.
    fn string(&mut self) -> Result<String, LoadReportError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("a string key"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run = self.pos;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.pos += 1;
            }
            out.push_str(&self.text[run..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                _ => return Err(self.error("a closing '\"' before any control character")),
            }
        }
    }

    /// The character after a backslash.
    fn escape(&mut self) -> Result<char, LoadReportError> {
        let Some(byte) = self.peek() else {
            return Err(self.error("an escape character"));
        };
        self.pos += 1;
        Ok(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&high) {
                    if !(self.text[self.pos..].starts_with("\\u")) {
                        return Err(self.error("a low surrogate after a high one"));
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.error("a low surrogate after a high one"));
                    }
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                char::from_u32(code).ok_or_else(|| self.error("a valid \\u escape"))?
            }
            _ => {
                self.pos -= 1;
                return Err(self.error("one of \" \\ / b f n r t u after '\\'"));
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, LoadReportError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.error("four hex digits after \\u"))?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    /// A JSON number, checked for the grammar, then read by Rust's exactly-rounding parser.
    fn number(&mut self, key: &str) -> Result<f64, LoadReportError> {
        self.skip_space();
        let start = self.pos;
        self.eat_byte(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("a number")),
        }
        if self.eat_byte(b'.') {
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("a digit after '.'"));
            }
            self.digits();
        }
        if self.eat_byte(b'e') || self.eat_byte(b'E') {
            if !self.eat_byte(b'+') {
                self.eat_byte(b'-');
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("a digit in the exponent"));
            }
            self.digits();
        }
        let literal = &self.text[start..self.pos];
        match literal.parse::<f64>() {
            Ok(value) => check_value(key, value),
            // The grammar above is a subset of what Rust parses, so this is unreachable in
            // practice; an error beats a panic all the same.
            Err(_) => Err(LoadReportError::InvalidNumber {
                field: excerpt(key),
                value: excerpt(literal),
            }),
        }
    }

    /// Consumes `byte` if it is next, without skipping space.
    fn eat_byte(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }
}
