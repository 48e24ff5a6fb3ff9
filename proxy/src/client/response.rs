//! Reading an HTTP/1.x response from bytes as they arrive, without I/O: the head (parsed by
//! `httparse`), then the body as its framing says (Content-Length, chunked with extensions
//! and trailers, or until the connection closes), within size caps.
//!
//! The bytes come from peers and backends, so nothing here trusts them: every outcome is a
//! value or a [`ResponseError`], never a panic. This file uses only `std`, `httparse` and
//! `thiserror`, because the `http_response` fuzz target compiles it on its own.

/// Most header fields read in a head or a trailer (as many as Pingora's own client reads, so
/// a health check never refuses what the proxy accepts).
const MAX_FIELDS: usize = 256;
/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// A chunked body may take this many times its cap on the wire (framing included), so a
/// peer cannot make us buffer without end by sending tiny chunks with long extensions.
const CHUNKED_OVERHEAD: usize = 4;

/// How much of a response is read at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the head (status line and header fields, interim responses included).
    pub head: usize,
    /// Bytes of the body once decoded.
    pub body: usize,
}

/// How the end of a response's body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (204, 304, 1xx).
    Empty,
    /// Exactly this many bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the peer closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code, as the status line gives it.
    pub status: u16,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the connection cannot carry another request after this response.
    pub close: bool,
    /// Bytes of the head, interim responses before it included.
    pub len: usize,
}

/// A whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The decoded body.
    pub body: Vec<u8>,
    /// Whether the connection cannot carry another request after this response.
    pub close: bool,
    /// Bytes of the input this response took (what follows belongs to the next one).
    pub len: usize,
}

/// Why bytes are not an acceptable response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The head is not HTTP/1.x.
    #[error("not an HTTP/1.x response: {0}")]
    Malformed(httparse::Error),
    /// The head did not end within the cap.
    #[error("response head over {0} bytes")]
    HeadTooLarge(usize),
    /// The body (decoded, or on the wire) exceeds the cap.
    #[error("response body over {0} bytes")]
    BodyTooLarge(usize),
    /// A Content-Length that is not one decimal number.
    #[error("expected one decimal Content-Length")]
    BadLength,
    /// A chunk whose size line or end is wrong.
    #[error("malformed chunked body")]
    BadChunk,
    /// The connection ended before the response did.
    #[error("connection closed before the end of the response")]
    Truncated,
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete. Interim (1xx)
/// responses before the final one are skipped.
pub fn parse_head(buf: &[u8], max: usize) -> Result<Option<Head>, ResponseError> {
    let mut start = 0;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut response = httparse::Response::new(&mut fields);
        // As lenient as Pingora's client towards backends: a space before a field's colon,
        // and obsolete folded field lines.
        let parsed = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .parse_response(&mut response, &buf[start..]);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= max => {
                return Err(ResponseError::HeadTooLarge(max))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(ResponseError::Malformed(e)),
        };
        let end = start + len;
        if end > max {
            return Err(ResponseError::HeadTooLarge(max));
        }
        let status = response.code.unwrap_or_default();
        if status < 100 {
            return Err(ResponseError::Malformed(httparse::Error::Status));
        }
        if (100..200).contains(&status) && status != 101 {
            start = end;
            continue;
        }
        let framing = framing(status, response.headers)?;
        let close = framing == Framing::UntilClose
            || response.version == Some(0)
            || response
                .headers
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case("connection") && has_token(f.value, b"close"));
        return Ok(Some(Head {
            status,
            framing,
            close,
            len: end,
        }));
    }
}

/// The body's framing from the status and header fields (RFC 9112 §6.3).
fn framing(status: u16, fields: &[httparse::Header<'_>]) -> Result<Framing, ResponseError> {
    if status < 200 || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if let Some(coding) = fields
        .iter()
        .rev()
        .find(|f| f.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        let last = coding.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
        return Ok(if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for field in fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("content-length"))
    {
        let value = field.value.trim_ascii();
        let n = std::str::from_utf8(value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or(ResponseError::BadLength)?;
        if length.is_some_and(|l| l != n) {
            return Err(ResponseError::BadLength);
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Whether a comma-separated header value lists `token` (case-insensitively).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// One response read from a buffer that grows as bytes arrive: call [`Self::advance`] with
/// everything received so far after each read. Work already done is kept, so reading a
/// response costs time linear in its size however it is split.
#[derive(Debug)]
pub struct ResponseReader {
    limits: Limits,
    head: Option<Head>,
    /// Decoded body so far (chunked framing).
    body: Vec<u8>,
    /// Where decoding resumes (chunked framing): the end of the last whole chunk.
    pos: usize,
}

impl ResponseReader {
    /// A reader for one response within `limits`.
    pub fn new(limits: Limits) -> Self {
        ResponseReader {
            limits,
            head: None,
            body: Vec::new(),
            pos: 0,
        }
    }

    /// Reads on in `buf` (what was given before plus what arrived since; `eof` once the peer
    /// has closed): `Ok(None)` while the response is incomplete.
    pub fn advance(&mut self, buf: &[u8], eof: bool) -> Result<Option<Response>, ResponseError> {
        let head = match self.head {
            Some(head) => head,
            None => match parse_head(buf, self.limits.head)? {
                Some(head) => {
                    self.head = Some(head);
                    self.pos = head.len;
                    head
                }
                None if eof => return Err(ResponseError::Truncated),
                None => return Ok(None),
            },
        };
        let max = self.limits.body;
        // The caller gives the bytes it gave before and more; anything else reads as no body.
        let rest = buf.get(head.len..).unwrap_or_default();
        let whole = |body: Vec<u8>, len: usize| Response {
            status: head.status,
            body,
            close: head.close,
            len,
        };
        match head.framing {
            Framing::Empty => Ok(Some(whole(Vec::new(), head.len))),
            Framing::Length(n) if n > max => Err(ResponseError::BodyTooLarge(max)),
            Framing::Length(n) if rest.len() >= n => {
                Ok(Some(whole(rest[..n].to_vec(), head.len + n)))
            }
            Framing::UntilClose if rest.len() > max => Err(ResponseError::BodyTooLarge(max)),
            Framing::UntilClose if eof => Ok(Some(whole(rest.to_vec(), buf.len()))),
            Framing::Length(_) | Framing::UntilClose if eof => Err(ResponseError::Truncated),
            Framing::Length(_) | Framing::UntilClose => Ok(None),
            Framing::Chunked => match self.chunks(buf)? {
                Some(len) => Ok(Some(whole(std::mem::take(&mut self.body), len))),
                None if rest.len()
                    > CHUNKED_OVERHEAD
                        .saturating_mul(max)
                        .saturating_add(MAX_CHUNK_LINE) =>
                {
                    Err(ResponseError::BodyTooLarge(max))
                }
                None if eof => Err(ResponseError::Truncated),
                None => Ok(None),
            },
        }
    }

    /// Decodes whole chunks from `self.pos`; the end of the body (trailers included) once the
    /// last chunk and the trailers are in.
    fn chunks(&mut self, buf: &[u8]) -> Result<Option<usize>, ResponseError> {
        let max = self.limits.body;
        loop {
            let at = buf.get(self.pos..).unwrap_or_default();
            let (line, size) = match httparse::parse_chunk_size(at) {
                Ok(httparse::Status::Complete(found)) => found,
                Ok(httparse::Status::Partial) if at.len() > MAX_CHUNK_LINE => {
                    return Err(ResponseError::BadChunk)
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::InvalidChunkSize) => return Err(ResponseError::BadChunk),
            };
            if size == 0 {
                let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
                return match httparse::parse_headers(&at[line..], &mut fields) {
                    Ok(httparse::Status::Complete((trailers, _))) => {
                        Ok(Some(self.pos + line + trailers))
                    }
                    Ok(httparse::Status::Partial) if at.len() > self.limits.head => {
                        Err(ResponseError::HeadTooLarge(self.limits.head))
                    }
                    Ok(httparse::Status::Partial) => Ok(None),
                    Err(e) => Err(ResponseError::Malformed(e)),
                };
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= max - self.body.len())
                .ok_or(ResponseError::BodyTooLarge(max))?;
            let data = &at[line..];
            if data.len() < size.saturating_add(2) {
                return Ok(None);
            }
            if &data[size..size + 2] != b"\r\n" {
                return Err(ResponseError::BadChunk);
            }
            self.body.extend_from_slice(&data[..size]);
            self.pos += line + size + 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        head: 1024,
        body: 64,
    };

    /// One response from the whole of `buf` (`eof`: nothing more will come).
    fn parse(buf: &[u8], eof: bool, limits: Limits) -> Result<Option<Response>, ResponseError> {
        ResponseReader::new(limits).advance(buf, eof)
    }

    /// The response in `bytes`, fed whole and then one byte at a time: both ways must agree.
    fn read(bytes: &[u8]) -> Result<Option<Response>, ResponseError> {
        let whole = parse(bytes, true, LIMITS);
        let mut reader = ResponseReader::new(LIMITS);
        let mut split = Ok(None);
        for end in 0..=bytes.len() {
            split = reader.advance(&bytes[..end], end == bytes.len());
            if !matches!(split, Ok(None)) {
                break;
            }
        }
        assert_eq!(whole, split, "fed whole and byte by byte");
        whole
    }

    /// Each of `cases` is refused with an error that `is` accepts.
    fn refused(cases: &[&[u8]], is: impl Fn(&ResponseError) -> bool) {
        for case in cases {
            let result = read(case);
            assert!(
                result.as_ref().is_err_and(&is),
                "{:?}: {result:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    fn body(bytes: &[u8]) -> (u16, Vec<u8>, usize) {
        let r = read(bytes).unwrap().unwrap();
        (r.status, r.body, r.len)
    }

    #[test]
    fn content_length_body_ends_where_it_says() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 next";
        assert_eq!(body(bytes), (200, b"hello".to_vec(), bytes.len() - 13));
        let r = parse(bytes, false, LIMITS).unwrap().unwrap();
        assert!(!r.close, "keep-alive by default in HTTP/1.1");
        // Repeated equal lengths are one length; different ones are an error.
        let twice = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(body(twice).1, b"ok");
        refused(
            &[
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            ],
            |e| *e == ResponseError::BadLength,
        );
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers_is_decoded() {
        let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\
            Content-Length: 1\r\n\r\n\
            5;name=value\r\nhello\r\n1 ; x\r\n,\r\nA\r\n world ok!\r\n0\r\n\
            Expires: never\r\nX-Trailer: 1\r\n\r\nNEXT";
        assert_eq!(
            body(bytes),
            (200, b"hello, world ok!".to_vec(), bytes.len() - 4)
        );
        let no_trailers =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(body(no_trailers).1, b"ok");
        refused(
            &[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
            ],
            |e| *e == ResponseError::BadChunk,
        );
    }

    #[test]
    fn heads_are_read_as_leniently_as_pingora_reads_backends() {
        // A space before a colon, a folded field line, and many fields: Pingora's proxy takes
        // such a backend, so its health check must too (70 fields: more than the 64 read before).
        let mut bytes = b"HTTP/1.1 200 OK\r\nServer : x\r\nX-Long: a\r\n b\r\n".to_vec();
        for i in 0..70 {
            bytes.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        assert_eq!(body(&bytes).0, 200);
        let head = parse_head(&bytes, 16 << 10).unwrap().unwrap();
        assert_eq!(head.status, 200);
    }

    #[test]
    fn body_without_length_runs_until_close() {
        let bytes = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nall of it";
        assert_eq!(parse(bytes, false, LIMITS), Ok(None), "more may come");
        let r = read(bytes).unwrap().unwrap();
        assert_eq!((r.body.as_slice(), r.close), (&b"all of it"[..], true));
        // A transfer coding that is not chunked last is also delimited by the close.
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz";
        assert_eq!(body(gzip).1, b"zz");
    }

    #[test]
    fn responses_without_a_body_and_interim_ones() {
        let bytes =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(body(bytes), (204, Vec::new(), bytes.len()));
        let close = b"HTTP/1.1 304 Not Modified\r\nConnection: keep-alive, Close\r\n\r\n";
        assert!(read(close).unwrap().unwrap().close);
        let old = b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let r = read(old).unwrap().unwrap();
        assert_eq!((r.status, r.close), (404, true));
    }

    #[test]
    fn truncated_responses_are_errors_once_the_peer_closes() {
        let cuts: [&[u8]; 5] = [
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: 1\r\n",
        ];
        let waiting = |cut: &&[u8]| parse(cut, false, LIMITS) == Ok(None);
        assert!(cuts.iter().all(waiting), "more may come");
        refused(&cuts, |e| *e == ResponseError::Truncated);
    }

    #[test]
    fn oversized_heads_and_bodies_are_refused() {
        let long_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(
            read(long_head.as_bytes()),
            Err(ResponseError::HeadTooLarge(1024))
        );
        // Refused from the head alone, before the body arrives.
        let declared = b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n";
        assert_eq!(
            parse(declared, false, LIMITS),
            Err(ResponseError::BodyTooLarge(64))
        );
        let until_close = format!("HTTP/1.1 200 OK\r\n\r\n{}", "b".repeat(65));
        assert_eq!(
            read(until_close.as_bytes()),
            Err(ResponseError::BodyTooLarge(64))
        );
        let chunks = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{0}\r\n21\r\n{0}c\r\n0\r\n\r\n",
            "c".repeat(32)
        );
        assert_eq!(
            read(chunks.as_bytes()),
            Err(ResponseError::BodyTooLarge(64))
        );
        let endless_extension = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}",
            "e".repeat(MAX_CHUNK_LINE)
        );
        assert_eq!(
            parse(endless_extension.as_bytes(), false, LIMITS),
            Err(ResponseError::BadChunk)
        );
    }

    #[test]
    fn garbage_is_not_a_response() {
        refused(
            &[
                b"SSH-2.0-OpenSSH_9.6\r\n",
                b"HTTP/2 200\r\n\r\n",
                b"HTTP/1.1 2000 OK\r\n\r\n",
                b"HTTP/1.1 20 OK\r\n\r\n",
                b"HTTP/1.1 099 OK\r\n\r\n",
                b"\x00\xff\xfe garbage\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            ],
            |e| matches!(e, ResponseError::Malformed(_)),
        );
    }

    #[test]
    fn changed_bytes_never_panic_and_stay_within_caps() {
        let samples: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.0 404 Not Found\r\nConnection: close\r\n\r\ngone",
        ];
        for sample in samples {
            for at in 0..sample.len() {
                for byte in [0, b'\r', b'\n', b'0', b'f', b';', b':', b' ', 0xff] {
                    let mut bytes = sample.to_vec();
                    bytes[at] = byte;
                    if let Ok(Some(r)) = read(&bytes) {
                        assert!(r.len <= bytes.len() && r.body.len() <= LIMITS.body);
                    }
                }
            }
        }
    }
}
