//! Webhook signatures (`X-Twilio-Signature`) of Twilio and the Twilio-compatible providers:
//! computing and checking them by the same rules as Twilio's helper library, and parsing form bodies.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Name of the HTTP header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Query parameter that carries the hex SHA-256 of a JSON webhook's body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

type HmacSha1 = Hmac<Sha1>;

/// Computes the X-Twilio-Signature value for a form-encoded webhook.
///
/// The signed text is `url` exactly as given, followed by every distinct
/// parameter as `name` + `value`, sorted by name and then by value (code point
/// order, case-sensitive). A name sent with the same value twice counts once.
/// The result is base64 of HMAC-SHA1 keyed with the auth token.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // Byte order of UTF-8 equals code point order, which is how the library sorts.
    pairs.sort_unstable();
    pairs.dedup();

    let mut mac = match HmacSha1::new_from_slice(auth_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(url.as_bytes());
    for (name, value) in pairs {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    BASE64.encode(mac.finalize().into_bytes())
}

/// Checks a form-encoded webhook's signature (constant-time compare, also tries the URL with/without the default port like Twilio's library does).
///
/// As in the library, the URL is first re-assembled the way Python's `urllib`
/// does (lower-case scheme, a bare trailing `?` or `#` dropped), then checked
/// once without its port and once with a port (the default one, 443 for
/// `https` and 80 otherwise, when the URL has none). A URL whose port is not a
/// number from 0 to 65535, or whose IPv6 brackets do not pair up, never verifies.
pub fn verify_form(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    match ParsedUrl::parse(url) {
        Some(parsed) => matches_either_port(auth_token, &parsed, params, signature).into(),
        None => false,
    }
}

/// Checks a JSON-body webhook: the URL's bodySHA256 must equal hex SHA-256 of body, and the signature is over the URL with no params.
///
/// The first non-empty `bodySHA256` query value counts and is compared as
/// text with the lower-case hex digest. The URL itself is checked with the
/// same port rules as [`verify_form`]. A URL without `bodySHA256` never
/// verifies, because the body would then be covered by nothing.
pub fn verify_json_body(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(parsed) = ParsedUrl::parse(url) else {
        return false;
    };
    let Some(expected) = first_query_value(&parsed.query, BODY_SHA256_PARAM) else {
        return false;
    };
    let body_ok = body_sha256(body).as_bytes().ct_eq(expected.as_bytes());
    let signature_ok = matches_either_port(auth_token, &parsed, &[], signature);
    (body_ok & signature_ok).into()
}

/// Returns the lower-case hex SHA-256 of `body`, the value a JSON webhook's URL carries as `bodySHA256`.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Parses an application/x-www-form-urlencoded body into ordered pairs; Err with a short reason for bytes that are not valid UTF-8 after decoding.
///
/// Fields are split on `&` (empty ones skipped) and then on the first `=`;
/// a field without `=` is a name with an empty value. `+` becomes a space and
/// `%XX` becomes the byte it names; a `%` not followed by two hex digits stays
/// as it is. Repeated names are kept, in the order they were sent.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    body.split(|&byte| byte == b'&')
        .filter(|field| !field.is_empty())
        .enumerate()
        .map(|(index, field)| {
            let (name, value) = match field.iter().position(|&byte| byte == b'=') {
                Some(at) => (&field[..at], &field[at + 1..]),
                None => (field, &field[field.len()..]),
            };
            let name = String::from_utf8(form_decode(name))
                .map_err(|_| FormError::NameNotUtf8 { index })?;
            let value = String::from_utf8(form_decode(value))
                .map_err(|_| FormError::ValueNotUtf8 { index })?;
            Ok((name, value))
        })
        .collect()
}

/// Why a form body could not be parsed; `index` counts the body's non-empty fields from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    /// The field's name is not valid UTF-8 after decoding.
    NameNotUtf8 {
        /// Position of the field among the body's non-empty fields.
        index: usize,
    },
    /// The field's value is not valid UTF-8 after decoding.
    ValueNotUtf8 {
        /// Position of the field among the body's non-empty fields.
        index: usize,
    },
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NameNotUtf8 { index } => {
                write!(f, "form field {index}: name is not valid UTF-8")
            }
            Self::ValueNotUtf8 { index } => {
                write!(f, "form field {index}: value is not valid UTF-8")
            }
        }
    }
}

impl std::error::Error for FormError {}

/// Compares the signature against the URL without and with its port, without
/// short-circuiting, in constant time for each comparison.
fn matches_either_port(
    auth_token: &str,
    parsed: &ParsedUrl,
    params: &[(String, String)],
    signature: &str,
) -> Choice {
    let without_port = compute(auth_token, &parsed.without_port(), params);
    let with_port = compute(auth_token, &parsed.with_port(), params);
    without_port.as_bytes().ct_eq(signature.as_bytes())
        | with_port.as_bytes().ct_eq(signature.as_bytes())
}

/// Schemes whose last path segment may carry `;params` (Python's `uses_params`).
const USES_PARAMS: &[&str] = &[
    "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtsps", "rtspu",
    "sip", "sips", "mms", "sftp", "tel",
];

/// Schemes that are written with `//` even when the authority is empty (Python's `uses_netloc`).
const USES_NETLOC: &[&str] = &[
    "", "ftp", "http", "gopher", "nntp", "telnet", "imap", "wais", "file", "mms", "https", "shttp",
    "snews", "prospero", "rtsp", "rtsps", "rtspu", "rsync", "svn", "svn+ssh", "sftp", "nfs", "git",
    "git+ssh", "ws", "wss",
];

/// A URL split the way Python's `urllib.parse.urlparse` splits it, so that it
/// can be put back together the way `geturl()` does.
#[derive(Debug)]
struct ParsedUrl {
    /// Lower-cased.
    scheme: String,
    netloc: String,
    path: String,
    params: String,
    query: String,
    fragment: String,
    /// Byte offset in `netloc` of the `:` before a port that is present and not 0.
    port_colon: Option<usize>,
}

impl ParsedUrl {
    /// Splits `url`; `None` where the library would raise (unpaired IPv6
    /// brackets, a port that is not a number from 0 to 65535).
    fn parse(url: &str) -> Option<Self> {
        let cleaned: String = url
            .trim_start_matches(|c: char| c <= ' ')
            .chars()
            .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
            .collect();
        let mut rest = cleaned.as_str();

        let mut scheme = String::new();
        if let Some(colon) = rest.find(':') {
            let candidate = &rest[..colon];
            let starts_with_letter = candidate
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic());
            let all_scheme_chars = candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
            if starts_with_letter && all_scheme_chars {
                scheme = candidate.to_ascii_lowercase();
                rest = &rest[colon + 1..];
            }
        }

        let mut netloc = "";
        if let Some(after_slashes) = rest.strip_prefix("//") {
            let end = after_slashes
                .find(['/', '?', '#'])
                .unwrap_or(after_slashes.len());
            netloc = &after_slashes[..end];
            rest = &after_slashes[end..];
            if netloc.contains('[') != netloc.contains(']') {
                return None;
            }
        }

        let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (path, params) = if USES_PARAMS.contains(&scheme.as_str()) {
            split_params(path)
        } else {
            (path, "")
        };
        let port_colon = find_port(netloc)?;

        Some(Self {
            scheme,
            netloc: netloc.to_owned(),
            path: path.to_owned(),
            params: params.to_owned(),
            query: query.to_owned(),
            fragment: fragment.to_owned(),
            port_colon,
        })
    }

    /// The URL without its port (the library's `remove_port`). Only the port
    /// is removed, so user info and IPv6 hosts stay intact.
    fn without_port(&self) -> String {
        match self.port_colon {
            Some(colon) => self.assemble(&self.netloc[..colon]),
            None => self.assemble(&self.netloc),
        }
    }

    /// The URL with a port (the library's `add_port`): as it is when it has
    /// one, otherwise with 443 for `https` and 80 for any other scheme.
    fn with_port(&self) -> String {
        if self.port_colon.is_some() {
            return self.assemble(&self.netloc);
        }
        let port = if self.scheme == "https" { 443 } else { 80 };
        self.assemble(&format!("{}:{port}", self.netloc))
    }

    /// Puts the URL back together with `netloc`, as Python's `urlunparse` does.
    fn assemble(&self, netloc: &str) -> String {
        let mut path = self.path.clone();
        if !self.params.is_empty() {
            path.push(';');
            path.push_str(&self.params);
        }
        let wants_slashes = !netloc.is_empty()
            || (!self.scheme.is_empty()
                && USES_NETLOC.contains(&self.scheme.as_str())
                && !path.starts_with("//"));
        let mut url = String::with_capacity(
            self.scheme.len() + netloc.len() + path.len() + self.query.len() + 8,
        );
        if !self.scheme.is_empty() {
            url.push_str(&self.scheme);
            url.push(':');
        }
        if wants_slashes {
            url.push_str("//");
            url.push_str(netloc);
            if !path.is_empty() && !path.starts_with('/') {
                url.push('/');
            }
        }
        url.push_str(&path);
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(&self.query);
        }
        if !self.fragment.is_empty() {
            url.push('#');
            url.push_str(&self.fragment);
        }
        url
    }
}

/// Splits `;params` off the last path segment, as Python's `_splitparams` does.
fn split_params(path: &str) -> (&str, &str) {
    let segment_start = path.rfind('/').unwrap_or(0);
    match path[segment_start..].find(';') {
        Some(offset) => {
            let at = segment_start + offset;
            (&path[..at], &path[at + 1..])
        }
        None => (path, ""),
    }
}

/// Finds the port in an authority: `Some(None)` when there is none (or it is
/// 0, which the library treats as none), `Some(Some(colon))` with the offset of
/// its `:`, and `None` when it is not a number from 0 to 65535.
fn find_port(netloc: &str) -> Option<Option<usize>> {
    let host_start = netloc.rfind('@').map_or(0, |at| at + 1);
    let hostinfo = &netloc[host_start..];
    let colon = match hostinfo.find('[') {
        Some(open) => hostinfo[open..]
            .find(']')
            .and_then(|close| hostinfo[open + close..].find(':').map(|c| open + close + c)),
        None => hostinfo.find(':'),
    };
    let Some(colon) = colon else {
        return Some(None);
    };
    let port = &hostinfo[colon + 1..];
    if port.is_empty() {
        return Some(None);
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match port.parse::<u32>() {
        Ok(0) => Some(None),
        Ok(number) if number <= 65_535 => Some(Some(host_start + colon)),
        _ => None,
    }
}

/// The first non-empty value of `wanted` in a query string, read the way
/// Python's `parse_qs` reads it (fields without `=` or with an empty value are
/// left out; names and values are form-decoded, bad UTF-8 replaced).
fn first_query_value(query: &str, wanted: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|field| field.split_once('='))
        .filter(|(_, value)| !value.is_empty())
        .find(|(name, _)| String::from_utf8_lossy(&form_decode(name.as_bytes())) == wanted)
        .map(|(_, value)| String::from_utf8_lossy(&form_decode(value.as_bytes())).into_owned())
}

/// Decodes one form-encoded name or value into bytes: `+` is a space and
/// `%XX` the byte it names; anything else, a lone `%` included, is kept.
fn form_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                input.get(i + 1).copied().and_then(hex_value),
                input.get(i + 2).copied().and_then(hex_value),
            ) {
                (Some(high), Some(low)) => {
                    out.push((high << 4) | low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const VECTORS_JSON: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/twilio-signatures.json"
    ));

    #[derive(Debug, Deserialize)]
    struct Fixture {
        vectors: Vec<Vector>,
    }

    #[derive(Debug, Deserialize)]
    struct Vector {
        name: String,
        kind: String,
        auth_token: String,
        url: String,
        #[serde(default)]
        params: Vec<(String, String)>,
        form_body: Option<String>,
        body: Option<String>,
        signature: String,
        computed: String,
        valid: bool,
    }

    fn vectors() -> Vec<Vector> {
        let fixture: Fixture = serde_json::from_str(VECTORS_JSON).unwrap();
        fixture.vectors
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn the_fixture_covers_both_kinds_with_valid_and_invalid_vectors() {
        let all = vectors();
        assert!(all.len() >= 12, "only {} vectors", all.len());
        for kind in ["form", "json"] {
            for valid in [true, false] {
                assert!(
                    all.iter().any(|v| v.kind == kind && v.valid == valid),
                    "no {kind} vector with valid={valid}"
                );
            }
        }
        assert!(all.iter().all(|v| v.kind == "form" || v.kind == "json"));
    }

    #[test]
    fn compute_gives_the_same_signature_as_twilios_library_for_every_vector() {
        for v in vectors() {
            assert_eq!(
                compute(&v.auth_token, &v.url, &v.params),
                v.computed,
                "vector {:?}",
                v.name
            );
        }
    }

    #[test]
    fn verification_answers_like_twilios_library_for_every_vector() {
        for v in vectors() {
            let answer = match v.kind.as_str() {
                "form" => verify_form(&v.auth_token, &v.url, &v.params, &v.signature),
                _ => {
                    let body = v.body.as_deref().unwrap();
                    verify_json_body(&v.auth_token, &v.url, body.as_bytes(), &v.signature)
                }
            };
            assert_eq!(answer, v.valid, "vector {:?}", v.name);
        }
    }

    #[test]
    fn every_form_vector_body_parses_back_to_its_params() {
        for v in vectors().into_iter().filter(|v| v.kind == "form") {
            let body = v.form_body.as_deref().unwrap();
            assert_eq!(
                parse_form(body.as_bytes()).unwrap(),
                v.params,
                "vector {:?}",
                v.name
            );
        }
    }

    #[test]
    fn the_order_params_arrive_in_does_not_change_the_signature() {
        let forward = pairs(&[("b", "2"), ("a", "1"), ("a", "0")]);
        let backward = pairs(&[("a", "0"), ("a", "1"), ("b", "2")]);
        let url = "https://example.com/hook";
        assert_eq!(compute("t", url, &forward), compute("t", url, &backward));
    }

    #[test]
    fn a_signature_verifies_only_with_its_exact_bytes() {
        let params = pairs(&[("Digits", "1")]);
        let url = "https://example.com/hook";
        let good = compute("token", url, &params);
        assert!(verify_form("token", url, &params, &good));
        assert!(!verify_form("token", url, &params, ""));
        assert!(!verify_form("token", url, &params, &format!(" {good}")));
        assert!(!verify_form("token", url, &params, &good[..good.len() - 1]));
    }

    #[test]
    fn a_json_body_without_body_sha256_in_the_url_is_refused() {
        let url = "https://example.com/events";
        let signature = compute("token", url, &[]);
        assert!(!verify_json_body("token", url, b"", &signature));
        assert!(!verify_json_body("token", url, b"{}", &signature));
    }

    #[test]
    fn an_empty_body_sha256_value_counts_as_missing() {
        let url = format!(
            "https://example.com/events?bodySHA256=&bodySHA256={}",
            body_sha256(b"{}")
        );
        let signature = compute("token", &url, &[]);
        assert!(verify_json_body("token", &url, b"{}", &signature));
    }

    #[test]
    fn body_sha256_is_lower_case_hex() {
        assert_eq!(
            body_sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_url_whose_port_is_not_a_port_never_verifies() {
        for url in [
            "https://example.com:https/hook",
            "https://example.com:65536/hook",
            "https://example.com:1:2/hook",
            "https://[::1/hook",
        ] {
            let signature = compute("token", url, &[]);
            assert!(!verify_form("token", url, &[], &signature), "{url}");
        }
    }

    #[test]
    fn removing_a_port_keeps_user_info_and_ipv6_hosts_intact() {
        let with_info = ParsedUrl::parse("https://user:pw@example.com:8443/hook").unwrap();
        assert_eq!(with_info.without_port(), "https://user:pw@example.com/hook");
        let ipv6 = ParsedUrl::parse("http://[::1]:8080/hook?x=1").unwrap();
        assert_eq!(ipv6.without_port(), "http://[::1]/hook?x=1");
        assert_eq!(ipv6.with_port(), "http://[::1]:8080/hook?x=1");
        let ipv6_no_port = ParsedUrl::parse("http://[::1]/hook").unwrap();
        assert_eq!(ipv6_no_port.with_port(), "http://[::1]:80/hook");
    }

    #[test]
    fn urls_are_reassembled_the_way_python_urllib_does() {
        for (given, expected) in [
            ("HTTPS://Example.com/a", "https://Example.com/a"),
            ("https://example.com/a?#", "https://example.com/a"),
            ("https://example.com/a;", "https://example.com/a"),
            (
                "https://example.com/a;p?q=1#f",
                "https://example.com/a;p?q=1#f",
            ),
            ("  https://exa\tmple.com/a\n", "https://example.com/a"),
            ("https://example.com", "https://example.com"),
        ] {
            let parsed = ParsedUrl::parse(given).unwrap();
            assert_eq!(parsed.without_port(), expected, "{given:?}");
        }
    }

    #[test]
    fn plus_signs_in_a_form_body_become_spaces() {
        let parsed = parse_form(b"SpeechResult=yes+I+agree&a+b=c").unwrap();
        assert_eq!(
            parsed,
            pairs(&[("SpeechResult", "yes I agree"), ("a b", "c")])
        );
    }

    #[test]
    fn percent_escapes_in_a_form_body_are_decoded_as_utf8() {
        let parsed =
            parse_form(b"From=%2B14155550100&SpeechResult=s%C3%AD&Emoji=%F0%9F%91%8d").unwrap();
        assert_eq!(
            parsed,
            pairs(&[
                ("From", "+14155550100"),
                ("SpeechResult", "sí"),
                ("Emoji", "👍")
            ])
        );
    }

    #[test]
    fn repeated_form_keys_are_kept_in_their_original_order() {
        let parsed = parse_form(b"Event=ringing&CallSid=CA1&Event=answered&Event=ringing").unwrap();
        assert_eq!(
            parsed,
            pairs(&[
                ("Event", "ringing"),
                ("CallSid", "CA1"),
                ("Event", "answered"),
                ("Event", "ringing")
            ])
        );
    }

    #[test]
    fn empty_fields_are_skipped_and_a_bare_name_has_an_empty_value() {
        let parsed = parse_form(b"&a=&&b&=c&d==e&").unwrap();
        assert_eq!(
            parsed,
            pairs(&[("a", ""), ("b", ""), ("", "c"), ("d", "=e")])
        );
        assert_eq!(parse_form(b"").unwrap(), Vec::new());
    }

    #[test]
    fn a_malformed_percent_escape_is_kept_as_written() {
        let parsed = parse_form(b"a=100%&b=%zz&c=%4").unwrap();
        assert_eq!(parsed, pairs(&[("a", "100%"), ("b", "%zz"), ("c", "%4")]));
    }

    #[test]
    fn a_value_that_is_not_utf8_after_decoding_is_refused() {
        let error = parse_form(b"ok=1&Body=%C3%28").unwrap_err();
        assert_eq!(error, FormError::ValueNotUtf8 { index: 1 });
        assert_eq!(error.to_string(), "form field 1: value is not valid UTF-8");
    }

    #[test]
    fn a_name_that_is_not_utf8_after_decoding_is_refused() {
        let error = parse_form(b"&&%FF=1").unwrap_err();
        assert_eq!(error, FormError::NameNotUtf8 { index: 0 });
        assert_eq!(error.to_string(), "form field 0: name is not valid UTF-8");
    }

    #[test]
    fn raw_bytes_that_are_not_utf8_are_refused() {
        assert_eq!(
            parse_form(b"a=\xE9t\xE9").unwrap_err(),
            FormError::ValueNotUtf8 { index: 0 }
        );
    }

    #[test]
    fn form_error_is_a_std_error() {
        let error: Box<dyn std::error::Error> = Box::new(FormError::NameNotUtf8 { index: 2 });
        assert_eq!(error.to_string(), "form field 2: name is not valid UTF-8");
    }
}
