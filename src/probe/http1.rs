//! A minimal HTTP/1.1 GET over a fresh TCP connection, for plain-HTTP probes and hooks: what
//! kubelet's Go client does for them, and no more. One request with `Connection: close`, the
//! response head read (at most [`MAX_HEAD`] bytes, 1xx interim responses skipped), at most
//! [`MAX_BODY`] bytes of the body read and dropped, the connection closed. It answers the status
//! and the Location header; redirects, the overall timeout and HTTPS are the caller's. Errors are
//! in Go's words, as they end up in events after `Get "<url>": `.

use std::{
    io,
    net::{IpAddr, SocketAddr},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The most a response's status line and headers may take (Go's default is 1 MiB; a health
/// endpoint's head is a few hundred bytes).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The most of a body that is read, as kubelet (`maxRespBodyLength`); the rest is left unread.
pub(crate) const MAX_BODY: usize = 10 * 1024;

#[derive(Debug, PartialEq)]
pub(crate) struct Response {
    pub status: u16,
    pub location: Option<String>,
}

/// How the body after a head ends (RFC 9112 section 6.3).
#[derive(Debug, PartialEq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Debug, PartialEq)]
struct Head {
    status: u16,
    location: Option<String>,
    body: Body,
}

/// A TCP connection to `host` (an IP address or a name to look up) and `port`; the error as Go's
/// dialer words it (`dial tcp 10.0.0.1:80: connect: connection refused`).
pub(crate) async fn dial(host: &str, port: u16) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("dial tcp: lookup {host}: {}", go_words(&e)))?
            .collect(),
    };
    let mut error = format!("dial tcp: lookup {host}: no such host");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => error = format!("dial tcp {address}: connect: {}", go_words(&e)),
        }
    }
    Err(error)
}

/// An OS error as Go prints it: strerror in lower case, without Rust's ` (os error N)`.
fn go_words(error: &io::Error) -> String {
    let text = error.to_string();
    let text = text.split_once(" (os error ").map_or(text.as_str(), |(words, _)| words);
    let mut chars = text.chars();
    chars.next().map(|first| first.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// The request's bytes: `GET <target>` with `Host: <host>`, `headers` in order, and
/// `Connection: close`. `target` is an already escaped path and query. A header that would break
/// the request's framing is refused, in Go's words.
pub(crate) fn request(host: &str, target: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, String> {
    let is_token = |name: &str| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let is_value = |value: &str| !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0'));
    if !is_value(host) || host.contains(' ') {
        return Err(format!("http: invalid Host header {host:?}"));
    }
    let mut bytes = Vec::with_capacity(128 + target.len() + host.len());
    for part in ["GET ", target, " HTTP/1.1\r\nHost: ", host, "\r\n"] {
        bytes.extend_from_slice(part.as_bytes());
    }
    for (name, value) in headers {
        if !is_token(name) {
            return Err(format!("net/http: invalid header field name {name:?}"));
        }
        if !is_value(value) {
            return Err(format!("net/http: invalid header field value for {name:?}"));
        }
        for part in [name, ": ", value.trim(), "\r\n"] {
            bytes.extend_from_slice(part.as_bytes());
        }
    }
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(bytes)
}

/// Sends `request` (from [`request`]) on `stream` and reads the response.
pub(crate) async fn exchange(mut stream: TcpStream, request: &[u8]) -> Result<Response, String> {
    // Go's `read tcp 10.0.0.2:40000->10.0.0.1:80: read: connection reset by peer`.
    let failed = |stream: &TcpStream, op: &str, e: &io::Error| {
        let address = |a: io::Result<SocketAddr>| a.map_or_else(|_| "?".to_owned(), |a| a.to_string());
        format!("{op} tcp {}->{}: {op}: {}", address(stream.local_addr()), address(stream.peer_addr()), go_words(e))
    };
    if let Err(e) = stream.write_all(request).await {
        return Err(failed(&stream, "write", &e));
    }
    match read_response(&mut stream).await {
        Ok(response) => Ok(response),
        Err(Failure::Io(e)) => Err(failed(&stream, "read", &e)),
        Err(Failure::Http(message)) => Err(message),
    }
}

#[derive(Debug)]
enum Failure {
    Io(io::Error),
    Http(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Http(message)
    }
}

/// Reads one response from `reader`: interim 1xx heads skipped (except 101, which is final, as in
/// Go), the final head parsed, then up to [`MAX_BODY`] bytes of its body.
async fn read_response<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Response, Failure> {
    let mut buf = Vec::with_capacity(4096);
    let mut start = 0;
    let (head, body_start) = loop {
        match parse_head(&buf[start..])? {
            Some((head, len)) if (100..200).contains(&head.status) && head.status != 101 => start += len,
            Some((head, len)) => break (head, start + len),
            None if buf.len() >= MAX_HEAD => {
                return Err(format!("net/http: server response headers exceeded {MAX_HEAD} bytes; aborted").into());
            }
            None => {
                if read_some(reader, &mut buf, MAX_HEAD).await? == 0 {
                    return Err(truncated_head(&buf[start..]).into());
                }
            }
        }
    };
    let cap = body_start + MAX_BODY;
    loop {
        let body = &buf[body_start..];
        let complete = match head.body {
            Body::None => true,
            Body::Length(length) => body.len() as u64 >= length,
            Body::Chunked => chunked_complete(body)?,
            Body::UntilClose => false,
        };
        // kubelet reads at most MAX_BODY and takes a longer body as non-fatal truncation.
        if complete || buf.len() >= cap {
            break;
        }
        if read_some(reader, &mut buf, cap).await? == 0 {
            if head.body == Body::UntilClose {
                break;
            }
            return Err("unexpected EOF".to_owned().into());
        }
    }
    Ok(Response { status: head.status, location: head.location })
}

/// Reads what is there into `buf`, never past `cap` bytes in all; 0 at the end of the stream.
async fn read_some<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    let len = buf.len();
    buf.resize(len + (cap - len).min(4096), 0);
    let read = reader.read(&mut buf[len..]).await;
    buf.truncate(len + *read.as_ref().unwrap_or(&0));
    read
}

/// Go's error for a stream that ended inside (or before) a head.
fn truncated_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "EOF".to_owned();
    }
    if !head.contains(&b'\n')
        && let Err(e) = status_line(head)
    {
        return e;
    }
    "unexpected EOF".to_owned()
}

/// The line starting at `*at` without its `\n` or `\r\n` (Go accepts both), moving `*at` past it;
/// `None` while the line is incomplete.
fn next_line<'a>(bytes: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let end = *at + bytes[*at..].iter().position(|&b| b == b'\n')?;
    let line = &bytes[*at..end];
    *at = end + 1;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// The head at the start of `bytes` and its length with the blank line; `None` while incomplete.
/// The status line is checked as soon as it is complete, so garbage fails at once.
fn parse_head(bytes: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut at = 0;
    let Some(line) = next_line(bytes, &mut at) else { return Ok(None) };
    let status = status_line(line)?;
    let (mut location, mut length, mut chunked) = (None, None, None);
    loop {
        let Some(line) = next_line(bytes, &mut at) else { return Ok(None) };
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // An obsolete folded continuation of the previous header; none of ours need it.
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!("malformed MIME header line: {}", String::from_utf8_lossy(line)));
        };
        let (name, value) = (&line[..colon], String::from_utf8_lossy(&line[colon + 1..]));
        let value = value.trim();
        if name.eq_ignore_ascii_case(b"location") {
            location = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case(b"content-length") {
            length = Some(value.parse::<u64>().map_err(|_| format!("bad Content-Length {value:?}"))?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Chunked only when it is the last coding; otherwise the body runs to the close.
            chunked = Some(value.rsplit(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked")));
        }
    }
    let body = match (status, chunked, length) {
        (100..200 | 204 | 304, _, _) => Body::None,
        (_, Some(true), _) => Body::Chunked,
        (_, Some(false), _) | (_, None, None) => Body::UntilClose,
        (_, None, Some(length)) => Body::Length(length),
    };
    Ok(Some((Head { status, location, body }, at)))
}

/// The status code from `HTTP/1.x <3 digits>[ <reason>]`, checked as Go's `ReadResponse` does.
fn status_line(line: &[u8]) -> Result<u16, String> {
    let text = String::from_utf8_lossy(line);
    let Some((version, rest)) = text.split_once(' ') else {
        return Err(format!("net/http: HTTP/1.x transport connection broken: malformed HTTP response {text:?}"));
    };
    let minor = version.strip_prefix("HTTP/1.").filter(|m| m.len() == 1 && m.as_bytes()[0].is_ascii_digit());
    if minor.is_none() {
        return Err(format!("malformed HTTP version {version:?}"));
    }
    let code = rest.trim_start_matches(' ').split(' ').next().unwrap_or_default();
    match code.parse::<u16>() {
        Ok(status) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => Ok(status),
        _ => Err(format!("malformed HTTP status code {code:?}")),
    }
}

/// Whether `body` holds a whole chunked body: chunks, the last (size 0) chunk and the trailer
/// section up to its blank line.
fn chunked_complete(body: &[u8]) -> Result<bool, String> {
    let mut at = 0;
    loop {
        let Some(line) = next_line(body, &mut at) else { return Ok(false) };
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| format!("malformed chunked encoding: bad chunk size {:?}", String::from_utf8_lossy(line)))?;
        if size == 0 {
            break;
        }
        // The chunk's data and the CRLF after it.
        at = at.saturating_add(size).saturating_add(2);
        if at > body.len() {
            return Ok(false);
        }
    }
    loop {
        match next_line(body, &mut at) {
            None => return Ok(false),
            Some([]) => return Ok(true),
            Some(_trailer) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, location: Option<&str>, body: Body) -> Head {
        Head { status, location: location.map(str::to_owned), body }
    }

    #[test]
    fn response_heads_parse_as_go_reads_them() {
        let cases: &[(&str, Result<Option<Head>, &str>)] = &[
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Ok(Some(head(200, None, Body::Length(2))))),
            ("HTTP/1.1 204\r\n\r\n", Ok(Some(head(204, None, Body::None)))),
            ("HTTP/1.1 200 \r\n\r\n", Ok(Some(head(200, None, Body::UntilClose)))),
            ("HTTP/1.0 200 OK\r\n\r\n", Ok(Some(head(200, None, Body::UntilClose)))),
            ("HTTP/1.1 500 Internal Server Error\nServer: x\n\n", Ok(Some(head(500, None, Body::UntilClose)))),
            ("HTTP/1.1 302 Found\r\nlocation:  /next \r\n\r\n", Ok(Some(head(302, Some("/next"), Body::UntilClose)))),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Ok(Some(head(200, None, Body::Chunked))),
            ),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", Ok(Some(head(200, None, Body::UntilClose)))),
            ("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", Ok(Some(head(304, None, Body::None)))),
            ("HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\r\n", Ok(Some(head(200, None, Body::UntilClose)))),
            ("", Ok(None)),
            ("HTTP/1.1 200 OK\r\nContent-Le", Ok(None)),
            ("HTTP/1.1 200 OK\r\n", Ok(None)),
            ("garbage\r\n", Err("net/http: HTTP/1.x transport connection broken: malformed HTTP response \"garbage\"")),
            (
                "SSH-2.0-OpenSSH_9.6\r\n",
                Err("net/http: HTTP/1.x transport connection broken: malformed HTTP response \"SSH-2.0-OpenSSH_9.6\""),
            ),
            ("HTTP/2.0 200 OK\r\n", Err("malformed HTTP version \"HTTP/2.0\"")),
            ("ICY 200 OK\r\n", Err("malformed HTTP version \"ICY\"")),
            ("HTTP/1.1 20 OK\r\n", Err("malformed HTTP status code \"20\"")),
            ("HTTP/1.1 abc\r\n", Err("malformed HTTP status code \"abc\"")),
            ("HTTP/1.1 +20 OK\r\n", Err("malformed HTTP status code \"+20\"")),
            ("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", Err("malformed MIME header line: no colon here")),
            ("HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", Err("bad Content-Length \"ten\"")),
        ];
        for (bytes, want) in cases {
            let got = parse_head(bytes.as_bytes()).map(|h| h.map(|(head, _)| head));
            assert_eq!(got.as_ref().map_err(String::as_str), want.as_ref().map_err(|e| *e), "{bytes:?}");
        }
    }

    #[test]
    fn a_heads_length_stops_at_its_blank_line() {
        let bytes = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
        assert_eq!(parse_head(bytes).unwrap().unwrap().1, bytes.len() - 4);
    }

    #[test]
    fn chunked_bodies_are_complete_after_the_last_chunk_and_trailers() {
        let cases: &[(&str, Result<bool, ()>)] = &[
            ("", Ok(false)),
            ("0\r\n\r\n", Ok(true)),
            ("0\r\n", Ok(false)),
            ("2\r\nok\r\n0\r\n\r\n", Ok(true)),
            ("2;ext=1\r\nok\r\n0\r\nTrailer: x\r\n\r\n", Ok(true)),
            ("2\r\nok\r\n0\r\nTrailer: x\r\n", Ok(false)),
            ("a\r\n0123456789\r\n", Ok(false)),
            ("A\r\n0123456789\r\n0\n\n", Ok(true)),
            ("10\r\nshort", Ok(false)),
            ("zz\r\n", Err(())),
        ];
        for (body, want) in cases {
            assert_eq!(chunked_complete(body.as_bytes()).map_err(drop), *want, "{body:?}");
        }
    }

    async fn read(bytes: &[u8]) -> Result<Response, String> {
        let mut reader = bytes;
        read_response(&mut reader).await.map_err(|f| match f {
            Failure::Io(e) => e.to_string(),
            Failure::Http(message) => message,
        })
    }

    fn ok(status: u16, location: Option<&str>) -> Result<Response, String> {
        Ok(Response { status, location: location.map(str::to_owned) })
    }

    #[tokio::test]
    async fn responses_read_their_head_and_at_most_10_kib_of_body() {
        let long = format!("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{}", "x".repeat(MAX_BODY + 10));
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let cases: Vec<(&[u8], Result<Response, String>)> = vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ok(200, None)),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", ok(204, None)),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", ok(101, None)),
            (b"HTTP/1.0 301 Moved\r\nLocation: http://a/b\r\n\r\nmoved", ok(301, Some("http://a/b"))),
            (chunked.as_bytes(), ok(200, None)),
            (long.as_bytes(), ok(200, None)),
            (b"", Err("EOF".into())),
            (b"HTTP/1.1 200 OK\r\nContent-", Err("unexpected EOF".into())),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", Err("unexpected EOF".into())),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nok", Err("unexpected EOF".into())),
            (b"nonsense", Err("net/http: HTTP/1.x transport connection broken: malformed HTTP response \"nonsense\"".into())),
        ];
        for (bytes, want) in cases {
            assert_eq!(read(bytes).await, want, "{:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(80)]));
        }
    }

    #[tokio::test]
    async fn a_head_over_16_kib_is_refused() {
        let bytes = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(
            read(bytes.as_bytes()).await,
            Err("net/http: server response headers exceeded 16384 bytes; aborted".into())
        );
        let fits = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD - 100));
        assert_eq!(read(fits.as_bytes()).await, ok(200, None));
    }

    #[test]
    fn requests_carry_host_headers_and_connection_close_and_refuse_broken_headers() {
        let bytes = request("10.0.0.1:8080", "/healthz?x=1", &[("User-Agent", "kube-probe/1.35"), ("Accept", "*/*")]);
        assert_eq!(
            String::from_utf8(bytes.unwrap()).unwrap(),
            "GET /healthz?x=1 HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: kube-probe/1.35\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(request("h", "/", &[("X Bad", "v")]), Err("net/http: invalid header field name \"X Bad\"".into()));
        assert_eq!(
            request("h", "/", &[("X", "a\r\nInjected: 1")]),
            Err("net/http: invalid header field value for \"X\"".into())
        );
        assert_eq!(request("h\r\nX: y", "/", &[]), Err("http: invalid Host header \"h\\r\\nX: y\"".into()));
    }

    #[tokio::test]
    async fn dialing_a_closed_port_fails_in_gos_words() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let error = dial("127.0.0.1", port).await.unwrap_err();
        assert_eq!(error, format!("dial tcp 127.0.0.1:{port}: connect: connection refused"));
    }
}
