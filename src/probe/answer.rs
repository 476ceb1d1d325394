//! An HTTP answer off the wire, whatever tungstenite made of it: any HTTP/1.x response
//! head (httparse), its body read briefly, de-chunked and decompressed before it is kept,
//! and a short excerpt of it for a diagnosis.

use std::io::Read;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::handshake::client::Response;

/// Most bytes of a refusal's body kept for the report (after decoding).
pub const BODY_LIMIT: usize = 1024;

/// Most raw bytes read of a chunked or compressed body, which decode to less.
const ENCODED_LIMIT: usize = 8 * BODY_LIMIT;

/// About how many characters an excerpt has at most.
const EXCERPT_CHARS: usize = 160;

/// An HTTP answer other than 101 (or the 101 itself), as received.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// The first KiB of the body, de-chunked and decompressed, as text.
    pub body: String,
}

impl HttpResponse {
    /// First value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The response tungstenite parsed, with `body`, the raw bytes after its head.
    pub fn from_tungstenite(response: &Response, body: &[u8]) -> Self {
        Head::from_tungstenite(response).into_response(body)
    }

    /// The body in one short line for a diagnosis: an HTML page's `<title>` and the start
    /// of its text (no tags, scripts or styles); any other body's first non-empty line.
    pub fn excerpt(&self) -> String {
        if self.is_html() {
            return html_excerpt(&self.body);
        }
        let line = self.body.lines().map(str::trim).find(|l| !l.is_empty());
        clip(line.unwrap_or_default())
    }

    fn is_html(&self) -> bool {
        let declared = self
            .header("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().contains("text/html"));
        let start = self.body.trim_start();
        declared || starts_with_ci(start, "<!doctype") || starts_with_ci(start, "<html")
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A response head: status line and headers, and how many bytes it took on the wire.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub len: usize,
}

impl Head {
    /// The head at the start of `bytes` when they hold a complete HTTP/1.x response head
    /// (`HTTP/1.0` as well as `HTTP/1.1`, which tungstenite refuses).
    pub fn parse(bytes: &[u8]) -> Option<Head> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = response.parse(bytes).ok()? else {
            return None;
        };
        Some(Head {
            status: response.code?,
            reason: response.reason.unwrap_or_default().to_owned(),
            headers: response
                .headers
                .iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value).into_owned();
                    (h.name.to_owned(), value)
                })
                .collect(),
            len,
        })
    }

    /// Whether `bytes` are the start of an HTTP/1.x response head still arriving.
    pub fn incomplete(bytes: &[u8]) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut response = httparse::Response::new(&mut headers);
        matches!(response.parse(bytes), Ok(httparse::Status::Partial))
    }

    /// The head of a response tungstenite parsed (its reason is the canonical one).
    pub fn from_tungstenite(response: &Response) -> Head {
        let status = response.status();
        Head {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or_default().to_owned(),
            headers: response
                .headers()
                .iter()
                .map(|(n, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (n.as_str().to_owned(), value)
                })
                .collect(),
            len: 0,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The response with `raw_body` (the bytes after the head) decoded.
    pub fn into_response(self, raw_body: &[u8]) -> HttpResponse {
        let body = if self.has_body() {
            decode_body(&self.headers, raw_body)
        } else {
            String::new()
        };
        HttpResponse {
            status: self.status,
            reason: self.reason,
            headers: self.headers,
            body,
        }
    }

    fn has_body(&self) -> bool {
        !matches!(self.status, 100..=199 | 204 | 304)
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length")?.trim().parse().ok()
    }

    /// How many raw body bytes are worth reading.
    fn raw_limit(&self) -> usize {
        let encoded = codings(&self.headers).next().is_some();
        if self.chunked() || encoded {
            ENCODED_LIMIT
        } else {
            BODY_LIMIT
        }
    }

    /// Whether `raw` holds the whole body (or all of it worth reading).
    fn body_complete(&self, raw: &[u8]) -> bool {
        if !self.has_body() || raw.len() >= self.raw_limit() {
            return true;
        }
        if self.chunked() {
            return dechunk(raw).1;
        }
        self.content_length()
            .is_some_and(|wanted| raw.len() >= wanted)
    }

    /// Reads more of the body into `body` (the raw bytes after the head) when the first
    /// read did not bring all of it; briefly: the report needs the text, not the stream.
    pub async fn complete_body<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        body: &mut Vec<u8>,
        wait: Duration,
    ) {
        let _ = tokio::time::timeout(wait, async {
            let mut chunk = [0u8; 512];
            while !self.body_complete(body) {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
    }
}

/// The content codings applied to a body, last applied first (`Content-Encoding`, then
/// any coding in `Transfer-Encoding` besides `chunked`), lower case, `identity` left out.
fn codings(headers: &[(String, String)]) -> impl Iterator<Item = String> {
    let listed: Vec<String> = ["content-encoding", "transfer-encoding"]
        .iter()
        .filter_map(|name| find_header(headers, name))
        .flat_map(|value| value.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity" && c != "chunked")
        .collect();
    listed.into_iter().rev()
}

/// The body as text: de-chunked, decompressed (gzip, deflate), the first `BODY_LIMIT`
/// bytes. A coding wscheck cannot undo leaves a note instead of binary.
pub fn decode_body(headers: &[(String, String)], raw: &[u8]) -> String {
    let chunked = find_header(headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let mut bytes = if chunked {
        dechunk(raw).0
    } else {
        raw.to_vec()
    };
    if bytes.is_empty() {
        return String::new();
    }
    for coding in codings(headers) {
        match decompress(&coding, &bytes) {
            Some(plain) => bytes = plain,
            None => return format!("[{} bytes of {coding}-encoded body]", bytes.len()),
        }
    }
    String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_LIMIT)]).into_owned()
}

/// The data of a chunked body, as far as `raw` goes, and whether its last chunk was seen.
fn dechunk(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    let mut rest = raw;
    loop {
        let Ok(httparse::Status::Complete((start, size))) = httparse::parse_chunk_size(rest) else {
            return (data, false);
        };
        if size == 0 {
            return (data, true);
        }
        rest = &rest[start..];
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if rest.len() < size {
            data.extend_from_slice(rest);
            return (data, false);
        }
        data.extend_from_slice(&rest[..size]);
        rest = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
}

/// Undoes one content coding, keeping what decodes of a truncated stream; `None` for a
/// coding wscheck does not know or bytes that are not in it.
fn decompress(coding: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};
    match coding {
        "gzip" | "x-gzip" => read_some(GzDecoder::new(bytes)),
        // HTTP's deflate is zlib-wrapped; some servers send it raw.
        "deflate" => {
            read_some(ZlibDecoder::new(bytes)).or_else(|| read_some(DeflateDecoder::new(bytes)))
        }
        _ => None,
    }
}

/// Up to `BODY_LIMIT` bytes of a decoder's output; `None` when it yields nothing but an
/// error.
fn read_some(mut decoder: impl Read) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 512];
    while out.len() < BODY_LIMIT {
        match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) if out.is_empty() => return None,
            Err(_) => break,
        }
    }
    Some(out)
}

fn starts_with_ci(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// `text` cut to about `EXCERPT_CHARS` characters, with `…` when cut.
fn clip(text: &str) -> String {
    if text.chars().count() <= EXCERPT_CHARS {
        return text.to_owned();
    }
    let kept: String = text.chars().take(EXCERPT_CHARS - 1).collect();
    format!("{}…", kept.trim_end())
}

/// An HTML page's title and the start of its visible text.
fn html_excerpt(html: &str) -> String {
    let title = element_text(html, "title").map(|t| collapse(&decode_entities(t)));
    let mut visible = html.to_owned();
    for name in ["head", "title", "script", "style", "noscript"] {
        visible = remove_elements(&visible, name);
    }
    let text = collapse(&decode_entities(&strip_tags(&visible)));
    match title.filter(|t| !t.is_empty()) {
        None => clip(&text),
        Some(title) => {
            // Pages often repeat the title as their first heading.
            let text = text.strip_prefix(title.as_str()).unwrap_or(&text).trim();
            if text.is_empty() {
                clip(&title)
            } else {
                clip(&format!("{title} — {text}"))
            }
        }
    }
}

/// Byte offset of `needle` in `haystack`, ASCII case-insensitively, from `from` on.
fn find_ci(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    let hay = haystack.as_bytes();
    let needle = needle.as_bytes();
    (from..=hay.len().checked_sub(needle.len())?)
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// The raw content of the first `<name ...>...</name>`.
fn element_text<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let open = find_open_tag(html, name, 0)?;
    let start = open + html[open..].find('>')? + 1;
    let end = find_ci(html, &format!("</{name}"), start).unwrap_or(html.len());
    Some(&html[start..end])
}

/// Where the next `<name` tag (not `<names...`) starts.
fn find_open_tag(html: &str, name: &str, from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let found = find_ci(html, &format!("<{name}"), at)?;
        let next = html.as_bytes().get(found + 1 + name.len());
        if next.is_none_or(|b| matches!(b, b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n')) {
            return Some(found);
        }
        at = found + 1;
    }
}

/// `html` without its `<name>...</name>` elements and comments (an element left open
/// runs to the end).
fn remove_elements(html: &str, name: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut at = 0;
    while let Some(start) = find_open_tag(html, name, at) {
        out.push_str(&html[at..start]);
        out.push(' ');
        let close = format!("</{name}");
        at = match find_ci(html, &close, start) {
            Some(end) => html[end..].find('>').map_or(html.len(), |gt| end + gt + 1),
            None => html.len(),
        };
    }
    out.push_str(&html[at..]);
    out
}

/// Tags inside a run of text: dropped without a space in their place.
const INLINE_TAGS: [&str; 14] = [
    "a", "abbr", "b", "code", "em", "font", "i", "kbd", "s", "small", "span", "strong", "sub", "u",
];

/// Text with every tag and comment dropped: a space in place of all but inline tags.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let name: String = rest[lt + 1..]
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if !INLINE_TAGS.contains(&name.as_str()) {
            out.push(' ');
        }
        let end = if rest[lt..].starts_with("<!--") {
            rest[lt..].find("-->").map(|e| lt + e + 3)
        } else {
            rest[lt..].find('>').map(|e| lt + e + 1)
        };
        rest = &rest[end.unwrap_or(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// Runs of whitespace as one space, trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The common character references: the five named ones, `&nbsp;` and numeric ones.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest
            .find(';')
            .filter(|&semi| semi <= 10)
            .and_then(|semi| Some((entity(&rest[1..semi])?, semi + 1)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    let numeric = |digits: &str, radix| char::from_u32(u32::from_str_radix(digits, radix).ok()?);
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => match name.strip_prefix('#')? {
            hex if hex.starts_with(['x', 'X']) => numeric(&hex[1..], 16),
            dec => numeric(dec, 10),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(content_type: &str, body: &str) -> HttpResponse {
        HttpResponse {
            status: 404,
            reason: "Not Found".to_owned(),
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: body.to_owned(),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn any_http1_head_parses_and_a_partial_one_does_not() {
        let go =
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
        let head = Head::parse(go).unwrap();
        assert_eq!((head.status, head.reason.as_str()), (400, "Bad Request"));
        assert_eq!(
            &go[head.len..],
            b"Client sent an HTTP request to an HTTPS server.\n"
        );
        let head = Head::parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(head.unwrap().headers[0].0, "Upgrade");
        assert!(Head::parse(b"HTTP/1.1 404 Not Found\r\nContent-Le").is_none());
        assert!(Head::parse(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").is_none());
        assert!(Head::parse(&[0x16, 0x03, 0x01, 0x00, 0x05]).is_none());
    }

    #[test]
    fn chunked_bodies_are_joined_and_their_end_is_seen() {
        let raw = b"5\r\nfirst\r\n7;ext=1\r\n second\r\n0\r\n\r\n";
        assert_eq!(dechunk(raw), (b"first second".to_vec(), true));
        assert_eq!(dechunk(b"5\r\nfir"), (b"fir".to_vec(), false));
        let headers = vec![("Transfer-Encoding".to_owned(), "chunked".to_owned())];
        assert_eq!(decode_body(&headers, raw), "first second");
        let head = Head {
            status: 404,
            reason: String::new(),
            headers,
            len: 0,
        };
        assert!(head.body_complete(raw));
        assert!(!head.body_complete(b"5\r\nfirst\r\n"));
    }

    #[test]
    fn compressed_bodies_are_decompressed_even_when_cut_short() {
        let text: String = (0..200u32)
            .map(|i| format!("line {i}: {}\n", i.wrapping_mul(2_654_435_761)))
            .collect();
        let gz = gzip(text.as_bytes());
        let headers = vec![("Content-Encoding".to_owned(), "gzip".to_owned())];
        assert_eq!(decode_body(&headers, &gz), text[..BODY_LIMIT]);
        let cut = decode_body(&headers, &gz[..gz.len() / 2]);
        assert!(
            cut.starts_with("line 0: 0\nline 1: 2654435761\n"),
            "{cut:?}"
        );
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut zlib, b"deflated").unwrap();
        let headers = vec![("Content-Encoding".to_owned(), "deflate".to_owned())];
        assert_eq!(decode_body(&headers, &zlib.finish().unwrap()), "deflated");
        let headers = vec![("Content-Encoding".to_owned(), "br".to_owned())];
        assert_eq!(
            decode_body(&headers, &[0x1b, 0x02]),
            "[2 bytes of br-encoded body]"
        );
    }

    #[test]
    fn an_html_excerpt_is_the_title_and_the_visible_text() {
        let page = "<!DOCTYPE html>\n<html><head><title>Error &amp; more</title>\n\
            <style>body { color: red }</style><script>var x = '<b>';</script></head>\n\
            <body><h1>Error &amp; more</h1>\n<!-- hidden -->\n\
            <p>Something\n\n   went   <b>wrong</b>.</p></body></html>";
        assert_eq!(
            response("text/plain", page).excerpt(),
            "Error & more — Something went wrong."
        );
        let long = format!("<html><body><p>{}</p></body></html>", "word ".repeat(100));
        let excerpt = response("text/html", &long).excerpt();
        assert!(excerpt.chars().count() <= 160, "{excerpt}");
        assert!(
            excerpt.ends_with('…') && !excerpt.contains('<'),
            "{excerpt}"
        );
    }

    #[test]
    fn other_excerpts_are_the_first_non_empty_line_clipped() {
        let body = "\n\n  404 Not Found: Requested route ('a.example.com') does not exist.\nmore\n";
        assert_eq!(
            response("text/plain; charset=utf-8", body).excerpt(),
            "404 Not Found: Requested route ('a.example.com') does not exist."
        );
        let excerpt = response("text/plain", &"x".repeat(500)).excerpt();
        assert_eq!(excerpt.chars().count(), 160);
        assert_eq!(response("text/plain", "").excerpt(), "");
    }
}
