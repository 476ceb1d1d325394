//! Redaction rules: which header values, query parameters and `user:pass@` parts are
//! secrets, and how each is hidden. `Report::build` applies them to every place of a report
//! that can carry one, and `command_line` to the command line a report records, so no
//! format ever shows them.

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

/// Replaces the values of token-like query parameters in a URL, a path, a request line, or
/// a sentence that names several URLs (a verdict names the one asked about and the
/// canonical one). A query ends at whitespace, `#` or a quote; anything else is kept in
/// it, so that a value is rather redacted too far than not far enough.
pub fn text_with_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(q) = rest.find('?') {
        let (head, after) = rest.split_at(q + 1);
        out.push_str(head);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '#' | '"' | '\'' | '`'))
            .unwrap_or(after.len());
        let (query, tail) = after.split_at(end);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&redacted.join("&"));
        rest = tail;
    }
    out.push_str(rest);
    out
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

/// The command line as a report may show it, shell-quoted so it can be run again: the
/// program by its file name only (a path such as `/home/jdoe/.cargo/bin/wscheck` names a
/// user), `user:pass@` of TARGET and proxy URLs, credential header values (`-H`) and
/// token-like query parameters replaced by `[redacted]`.
pub fn command_line(args: &[String]) -> String {
    let mut shown = Vec::with_capacity(args.len());
    let mut next_is_header = false;
    for (i, arg) in args.iter().enumerate() {
        let text = if i == 0 {
            program_name(arg)
        } else if std::mem::take(&mut next_is_header) {
            head_line(arg)
        } else if let Some(header) = arg.strip_prefix("--header=") {
            format!("--header={}", head_line(header))
        } else if let Some(header) = arg.strip_prefix("-H").filter(|h| !h.is_empty()) {
            format!("-H{}", head_line(header))
        } else if let Some((flag, value)) = arg.split_once('=').filter(|(f, _)| f.starts_with("--"))
        {
            format!("{flag}={}", argument(value))
        } else {
            argument(arg)
        };
        next_is_header = arg == "-H" || arg == "--header" || is_short_cluster_ending_in_h(arg);
        shown.push(shell_quote(&text));
    }
    shown.join(" ")
}

/// `-kH`, `-vH`: short flags clustered, the last one `-H`, so the header is the next word.
fn is_short_cluster_ending_in_h(arg: &str) -> bool {
    arg.len() > 2
        && arg.starts_with('-')
        && !arg.starts_with("--")
        && arg.ends_with('H')
        && arg[1..].chars().all(|c| c.is_ascii_alphabetic())
}

fn program_name(arg: &str) -> String {
    std::path::Path::new(arg)
        .file_name()
        .map_or_else(|| arg.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Any other word: TARGET, a proxy URL, a flag's value. A secret header line given in a
/// form the loop does not follow (`-kvH` split oddly, `--header` after `--`) is still
/// caught by its shape.
fn argument(arg: &str) -> String {
    if looks_like_secret_header(arg) {
        return head_line(arg);
    }
    text_with_query(&without_userinfo(arg))
}

/// `Name: value` whose name is a credential header. Host names (`token.example.com:443`)
/// have dots, header names do not: the dot keeps a route from being taken for a header.
fn looks_like_secret_header(arg: &str) -> bool {
    arg.split_once(':').is_some_and(|(name, value)| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !value.trim().is_empty()
            && !value.trim().bytes().all(|b| b.is_ascii_digit())
            && is_secret_header(name)
    })
}

/// `[scheme://]user:pass@host...` with the user information replaced; the `@` stays, so
/// the reader sees that credentials were given. Only the authority is looked at (up to the
/// first `/`, `?` or `#`). Used for TARGET, proxies and command words alike: a password
/// before `@` never shows, while a message with spaces and no `user:pass` is left as it is.
pub fn without_userinfo(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    let authority = &text[start..end];
    match authority.rfind('@') {
        // Text with spaces and no `user:pass` shape is a message ("me @ home"), not a URL.
        Some(at) if authority.contains(char::is_whitespace) && !authority[..at].contains(':') => {
            text.to_owned()
        }
        Some(at) => format!("{}{REDACTED}@{}", &text[..start], &text[start + at + 1..]),
        None => text.to_owned(),
    }
}

/// Quotes a word for a POSIX shell when it needs it (single quotes; `'` as `'\''`).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
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
        // Every URL of a sentence, not only the first.
        assert_eq!(
            text_with_query("use ws://h/c?token=a — but wss://h/c?token=a fails; why?"),
            "use ws://h/c?token=[redacted] — but wss://h/c?token=[redacted] fails; why?"
        );
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

    #[test]
    fn command_lines_hide_passwords_credential_headers_and_tokens() {
        let argv = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            command_line(&argv(&[
                "/home/jdoe/.cargo/bin/wscheck",
                "wss://user:s3cret@myapp.example.com/ws?room=1&access_token=abc",
                "-H",
                "Authorization: Bearer abc",
                "--header=Cookie: a=b",
                "-HX-Api-Key: k",
                "-H",
                "X-Tenant: t1",
                "-x",
                "proxy-user:pw@proxy.corp:3128",
                "--proxy=http://u:p@proxy.corp:3128",
                "-k",
            ])),
            "wscheck 'wss://[redacted]@myapp.example.com/ws?room=1&access_token=[redacted]' \
             -H 'Authorization: [redacted]' '--header=Cookie: [redacted]' \
             '-HX-Api-Key: [redacted]' -H 'X-Tenant: t1' -x '[redacted]@proxy.corp:3128' \
             '--proxy=http://[redacted]@proxy.corp:3128' -k"
        );
    }

    #[test]
    fn command_lines_keep_what_is_no_secret() {
        let argv = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        // A route whose name contains "token" is no header; a message is no URL.
        assert_eq!(
            command_line(&argv(&[
                "wscheck",
                "apitoken.cfapps.eu10.hana.ondemand.com:8080",
                "--message",
                "it's me @ home",
                "--connect-to",
                "::127.0.0.1:8443",
            ])),
            "wscheck apitoken.cfapps.eu10.hana.ondemand.com:8080 --message 'it'\\''s me @ home' \
             --connect-to ::127.0.0.1:8443"
        );
        // Clustered short flags ending in -H: the next word is a header.
        assert_eq!(
            command_line(&argv(&["wscheck", "h", "-kH", "Cookie: x=1"])),
            "wscheck h -kH 'Cookie: [redacted]'"
        );
        assert_eq!(
            command_line(&argv(&["wscheck", "user@h"])),
            "wscheck '[redacted]@h'"
        );
    }
}
