//! Redaction rules: which header values and query parameters are secrets, and how each is
//! hidden. `Report::build` applies them to every place of a report that can carry one, so
//! no format ever shows them.

pub const REDACTED: &str = "[redacted]";

/// Header names whose values are secrets.
fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || [
        "token", "secret", "api-key", "apikey", "password", "session",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// Query parameter names that carry secrets.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "auth",
        "key",
        "secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "session",
        "jwt",
        "code",
        "credential",
        "ticket",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// Replaces the values of token-like query parameters in a URL, a path or a request line.
pub fn text_with_query(text: &str) -> String {
    let Some(q) = text.find('?') else {
        return text.to_owned();
    };
    let (head, rest) = text.split_at(q + 1);
    let end = rest.find([' ', '#']).unwrap_or(rest.len());
    let (query, tail) = rest.split_at(end);
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{}{tail}", redacted.join("&"))
}

/// A header value as it may appear in a report.
pub fn header_value(name: &str, value: &str) -> String {
    if is_secret_header(name) {
        REDACTED.to_owned()
    } else {
        value.to_owned()
    }
}

/// A raw header line (`Name: value`) or request line as it may appear in a report.
pub fn head_line(line: &str) -> String {
    match line.split_once(':') {
        Some((name, _)) if !name.contains(' ') && is_secret_header(name) => {
            format!("{name}: {REDACTED}")
        }
        _ => text_with_query(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_like_query_parameters_are_redacted() {
        assert_eq!(
            text_with_query("wss://h/ws?room=1&access_token=abc&sig=x#f"),
            "wss://h/ws?room=1&access_token=[redacted]&sig=[redacted]#f"
        );
        assert_eq!(
            text_with_query("GET /ws?apikey=1&x=2 HTTP/1.1"),
            "GET /ws?apikey=[redacted]&x=2 HTTP/1.1"
        );
        assert_eq!(text_with_query("wss://h/plain"), "wss://h/plain");
    }

    #[test]
    fn credential_headers_are_redacted() {
        assert_eq!(
            head_line("Authorization: Bearer abc"),
            "Authorization: [redacted]"
        );
        assert_eq!(head_line("cookie: JSESSIONID=1"), "cookie: [redacted]");
        assert_eq!(head_line("X-Api-Key: k"), "X-Api-Key: [redacted]");
        assert_eq!(head_line("Origin: https://h"), "Origin: https://h");
        assert_eq!(header_value("Set-Cookie", "a=b"), REDACTED);
        assert_eq!(header_value("Upgrade", "websocket"), "websocket");
    }
}
