//! The one small HTTP/1.1 client augur uses to ask things of itself, its peers and its
//! backends: the CLI's admin requests, peers' `GET /demand`, the demo's load and view (here,
//! blocking, for threads) and the active health check (on tokio, in `health.rs`). Both
//! transports write [`Request::encode`] and read with [`response::ResponseReader`], so
//! framing, caps and the status are decided in one place.

pub mod response;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub use response::{Limits, Response, ResponseError, ResponseReader};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8192;

/// One request to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET` or `POST`, set by the constructors only: the response reader expects a body
    /// whenever the framing says so, which a `HEAD` answer never has.
    method: &'static str,
    /// Path and query.
    pub path: &'a str,
    /// A JSON body (`POST`), sent with its length; `None` sends no body.
    pub json: Option<&'a [u8]>,
    /// The `User-Agent` field.
    pub user_agent: &'a str,
}

impl<'a> Request<'a> {
    /// `GET path`.
    pub fn get(path: &'a str) -> Self {
        Request {
            method: "GET",
            path,
            json: None,
            user_agent: "augur",
        }
    }

    /// `POST path` with a JSON body (possibly empty).
    pub fn post_json(path: &'a str, body: &'a [u8]) -> Self {
        Request {
            method: "POST",
            json: Some(body),
            ..Request::get(path)
        }
    }

    /// The same request with another `User-Agent`.
    pub fn user_agent(self, user_agent: &'a str) -> Self {
        Request { user_agent, ..self }
    }

    /// The request's bytes for `host`; `close` asks the server to close after answering.
    pub fn encode(&self, host: SocketAddr, close: bool) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\n",
            self.method, self.path, self.user_agent
        );
        if close {
            out.push_str("Connection: close\r\n");
        }
        if let Some(body) = self.json {
            out.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(self.json.unwrap_or_default());
        out
    }
}

/// Why a request got no usable response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the request or reading the response failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The whole exchange took longer than allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not an acceptable HTTP/1.x response.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// The connection cannot carry another request (the last response ended it).
    #[error("connection closed by the last response")]
    Closed,
}

/// How long a request may take and how much of its response is read.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Longest wait for the connection.
    pub connect: Duration,
    /// Longest wait for the whole exchange, connect included.
    pub total: Duration,
    /// Caps on the response.
    pub limits: Limits,
}

/// One request on a new connection, closed afterwards.
pub fn fetch(
    addr: SocketAddr,
    request: &Request<'_>,
    budget: Budget,
) -> Result<Response, ClientError> {
    let deadline = Deadline::after(budget.total);
    let mut conn = Connection::open(addr, budget.connect.min(deadline.left()?))?;
    conn.exchange(request, true, budget.limits, &deadline)
}

/// A blocking keep-alive connection: requests one after the other, each response read whole.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    /// Bytes read past the last response.
    buf: Vec<u8>,
    open: bool,
}

impl Connection {
    /// Connects to `addr` within `timeout`.
    pub fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|source| ClientError::Connect { addr, source })?;
        Ok(Connection {
            stream,
            addr,
            buf: Vec::new(),
            open: true,
        })
    }

    /// Sends `request` and reads its response, all within `total`.
    pub fn send(
        &mut self,
        request: &Request<'_>,
        total: Duration,
        limits: Limits,
    ) -> Result<Response, ClientError> {
        self.exchange(request, false, limits, &Deadline::after(total))
    }

    fn exchange(
        &mut self,
        request: &Request<'_>,
        close: bool,
        limits: Limits,
        deadline: &Deadline,
    ) -> Result<Response, ClientError> {
        if !self.open {
            return Err(ClientError::Closed);
        }
        // Whatever happens below, only a whole response leaves the connection usable.
        self.open = false;
        self.stream.set_write_timeout(Some(deadline.left()?))?;
        self.stream.write_all(&request.encode(self.addr, close))?;
        let mut reader = ResponseReader::new(limits);
        let mut eof = false;
        let response = loop {
            if let Some(response) = reader.advance(&self.buf, eof)? {
                break response;
            }
            self.stream.set_read_timeout(Some(deadline.left()?))?;
            let had = self.buf.len();
            self.buf.resize(had + READ_CHUNK, 0);
            let n = match self.stream.read(&mut self.buf[had..]) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(ClientError::Timeout(deadline.total))
                }
                Err(e) => return Err(e.into()),
            };
            self.buf.truncate(had + n);
            eof = n == 0;
        };
        self.buf.drain(..response.len);
        self.open = !close && !response.close && !eof;
        Ok(response)
    }
}

/// The end of an exchange's time.
struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    fn after(total: Duration) -> Self {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    /// Time left, or the timeout error once there is none (a zero timeout would mean none).
    fn left(&self) -> Result<Duration, ClientError> {
        self.at
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(ClientError::Timeout(self.total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const LIMITS: Limits = Limits {
        head: 8192,
        body: 1024,
    };

    /// A one-connection server on loopback that answers each request it reads with the next
    /// of `answers` (written in pieces, to exercise reading across writes).
    fn serve(answers: Vec<&'static [u8]>) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                let mut chunk = [0u8; 1024];
                while !seen.ends_with(b"\r\n\r\n") && !seen.ends_with(b"{}") {
                    let n = conn.read(&mut chunk).unwrap();
                    seen.extend_from_slice(&chunk[..n]);
                }
                seen.extend_from_slice(b"|");
                let (a, b) = answer.split_at(answer.len() / 2);
                conn.write_all(a).unwrap();
                conn.flush().unwrap();
                conn.write_all(b).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn keep_alive_connection_reads_each_response_whole() {
        let (addr, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none",
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n",
        ]);
        let mut conn = Connection::open(addr, Duration::from_secs(5)).unwrap();
        let total = Duration::from_secs(5);
        let first = conn.send(&Request::get("/a"), total, LIMITS).unwrap();
        assert_eq!((first.status, first.body.as_slice()), (200, &b"one"[..]));
        let second = conn
            .send(&Request::post_json("/b", b"{}"), total, LIMITS)
            .unwrap();
        assert_eq!((second.status, second.body.as_slice()), (503, &b"two"[..]));
        let seen = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            seen.starts_with("GET /a HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{seen}"
        );
        assert!(
            seen.contains("POST /b HTTP/1.1\r\n") && seen.contains("Content-Length: 2\r\n\r\n{}|"),
            "{seen}"
        );
    }

    #[test]
    fn fetch_reads_until_close_and_reports_bad_answers() {
        let (addr, _) = serve(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end"]);
        let budget = Budget {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(5),
            limits: LIMITS,
        };
        let r = fetch(addr, &Request::get("/"), budget).unwrap();
        assert_eq!(r.body, b"until the end");
        let (addr, _) = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"]);
        assert!(matches!(
            fetch(addr, &Request::get("/"), budget),
            Err(ClientError::Response(ResponseError::Truncated))
        ));
    }

    #[test]
    fn a_peer_that_never_answers_costs_the_deadline_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let budget = Budget {
            connect: Duration::from_secs(5),
            total: Duration::from_millis(200),
            limits: LIMITS,
        };
        let started = Instant::now();
        let result = fetch(addr, &Request::get("/"), budget);
        assert!(matches!(result, Err(ClientError::Timeout(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}
