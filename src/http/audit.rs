//! The audit gate every evidence route passes before it serves ([`audited`]),
//! and `GET /v1/audit`, where admins read the log back.
//!
//! One call per handler: it checks the reason (`X-Callproof-Reason`), writes
//! the entry (who, what, when, from where, why) with
//! [`crate::evidence::audit::write`], and only then may the handler serve.
//! If the entry cannot be written the answer is 503 and nothing is served.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use time::OffsetDateTime;

use super::client::ClientAddr;
use super::extract::{Admin, Key};
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::domain::{ConfirmationId, PhoneNumber};
use crate::evidence::audit::{self, Actor, AuditEntry};

/// The header that carries why evidence is accessed.
pub const REASON_HEADER: &str = "x-callproof-reason";

/// Longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Domain label of the keyed hash of phone numbers in audit filters.
const PHONE_CONTEXT: &[u8] = b"callproof/audit-phone/v1.";

/// One access to evidence, as a handler describes it to [`audited`].
#[derive(Debug, Clone)]
pub struct Access<'a> {
    action: &'a str,
    route: &'a str,
    record_id: Option<&'a str>,
    reason_required: bool,
    body_reason: Option<&'a str>,
    body_accepted: bool,
    filters: BTreeMap<String, Filter>,
}

#[derive(Debug, Clone)]
enum Filter {
    Text(String),
    Phone(String),
}

impl<'a> Access<'a> {
    /// `action` (e.g. `records.export`) on `route`, the method and route
    /// template (e.g. `GET /v1/records/{id}/export`).
    pub fn new(action: &'a str, route: &'a str) -> Self {
        Access {
            action,
            route,
            record_id: None,
            reason_required: false,
            body_reason: None,
            body_accepted: false,
            filters: BTreeMap::new(),
        }
    }

    /// The record concerned.
    pub fn record(mut self, id: &'a str) -> Self {
        self.record_id = Some(id);
        self
    }

    /// Refuses the request with 400 unless it gives a reason.
    pub fn reason_required(mut self) -> Self {
        self.reason_required = true;
        self
    }

    /// A reason the request's body gave, used when the header gives none.
    pub fn body_reason(mut self, reason: Option<&'a str>) -> Self {
        self.body_reason = reason;
        self.body_accepted = true;
        self
    }

    /// A search filter or parameter as given. A value that is a phone number
    /// (E.164) is recorded as its keyed hash, whatever its name.
    pub fn filter(mut self, name: &str, value: &str) -> Self {
        self.filters
            .insert(name.to_owned(), Filter::Text(value.to_owned()));
        self
    }

    /// A filter that is a phone number: always recorded as its keyed hash.
    pub fn phone(mut self, name: &str, value: &str) -> Self {
        self.filters
            .insert(name.to_owned(), Filter::Phone(value.to_owned()));
        self
    }

    /// The reason given, checked: `None` when none was given and none is needed.
    fn reason(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let header = match headers.get(REASON_HEADER) {
            Some(v) => Some(std::str::from_utf8(v.as_bytes()).map_err(|_| {
                ApiError::BadRequest("X-Callproof-Reason is not UTF-8 text".into())
            })?),
            None => None,
        };
        let given = header
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .or_else(|| self.body_reason.map(str::trim).filter(|t| !t.is_empty()));
        let Some(text) = given else {
            if !self.reason_required {
                return Ok(None);
            }
            let body = if self.body_accepted {
                r#", or as {"reason": "..."} in a JSON body"#
            } else {
                ""
            };
            return Err(ApiError::BadRequest(format!(
                "a reason is required to access this evidence: say why in the X-Callproof-Reason header (e.g. X-Callproof-Reason: dispute D-118 from the account holder){body}; it is kept in the audit log"
            )));
        };
        if text.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::BadRequest(format!(
                "the reason is longer than {MAX_REASON_CHARS} characters: shorten X-Callproof-Reason"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(
                "the reason holds control characters (tabs, line breaks): send one line of text in X-Callproof-Reason".into(),
            ));
        }
        Ok(Some(text.to_owned()))
    }
}

/// `hmac-sha256:<hex>` of a phone number (its E.164 form when it is one)
/// under `secret` with a label of its own: equal numbers give equal hashes,
/// and without the secret the number cannot be recovered by trying them all.
pub fn phone_hash(secret: &str, phone: &str) -> String {
    let text = phone.trim();
    let canonical = text
        .parse::<PhoneNumber>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|_| text.to_owned());
    // HMAC takes a key of any length.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(PHONE_CONTEXT);
    mac.update(canonical.as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

/// Writes the audit entry of `access` by `caller` from `client`, after
/// checking the reason in `headers`; call it before serving anything.
///
/// 400 when a reason is required and missing or unusable (nothing is
/// written); 503 when the entry cannot be written (nothing may be served).
pub async fn audited(
    s: &AppState,
    caller: &Caller,
    access: Access<'_>,
    headers: &HeaderMap,
    client: ClientAddr,
) -> Result<AuditEntry, ApiError> {
    let reason = access.reason(headers)?;
    let secret = &s.credentials.token_secret;
    let mut entry = AuditEntry::new(
        OffsetDateTime::now_utc(),
        Actor {
            role: caller.role.as_str().to_owned(),
            name: caller.key_name.clone(),
        },
        access.action,
        access.route,
    );
    entry.record_id = access.record_id.map(str::to_owned);
    entry.client = client.0.map(|ip| ip.to_string());
    entry.reason = reason;
    entry.filters = access
        .filters
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Filter::Phone(p) => phone_hash(secret, &p),
                Filter::Text(t) if t.trim().parse::<PhoneNumber>().is_ok() => {
                    phone_hash(secret, &t)
                }
                Filter::Text(t) => t,
            };
            (name, value)
        })
        .collect();
    if let Err(e) = audit::write(&s.evidence, &entry).await {
        tracing::error!(
            error = %format!("{e:#}"),
            action = %entry.action,
            role = %entry.actor.role,
            key = %entry.actor.name,
            record = entry.record_id.as_deref().unwrap_or("-"),
            "the audit entry could not be written; nothing was served"
        );
        return Err(ApiError::Unavailable(
            "the audit log cannot be written; nothing was served. Try again later; the server log says why".into(),
        ));
    }
    tracing::info!(
        audit = %entry.id,
        action = %entry.action,
        role = %entry.actor.role,
        key = %entry.actor.name,
        record = entry.record_id.as_deref().unwrap_or("-"),
        "evidence access audited"
    );
    Ok(entry)
}

/// Default and largest page of `GET /v1/audit`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Query parameters of `GET /v1/audit`, as text.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    record: Option<String>,
    key: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

struct ListFilter {
    record: Option<String>,
    key: Option<String>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    limit: usize,
    before: Option<String>,
}

/// True for an entry id: 20 digits of Unix nanoseconds, `-`, 8 hex digits.
fn is_entry_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 29
        && b[..20].iter().all(u8::is_ascii_digit)
        && b[20] == b'-'
        && b[21..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// When an entry id says it was written, in Unix nanoseconds.
fn id_nanos(id: &str) -> Option<i128> {
    id.get(..20)?.parse().ok()
}

impl ListFilter {
    fn parse(q: &AuditQuery) -> Result<ListFilter, ApiError> {
        let mut errors = BTreeMap::new();
        let mut f = ListFilter {
            record: None,
            key: None,
            from: None,
            to: None,
            limit: DEFAULT_LIMIT,
            before: None,
        };
        if let Some(r) = &q.record {
            match r.parse::<ConfirmationId>() {
                Ok(id) => f.record = Some(id.to_string()),
                Err(_) => {
                    errors.insert("record".into(), "use a record id (32 hex digits)".into());
                }
            }
        }
        if let Some(k) = &q.key {
            if k.is_empty() || k.len() > 64 {
                errors.insert("key".into(), "use the name of an API key".into());
            } else {
                f.key = Some(k.clone());
            }
        }
        for (name, text, end) in [("from", &q.from, false), ("to", &q.to, true)] {
            if let Some(t) = text {
                match super::records::parse_bound(t, end) {
                    Ok(t) if end => f.to = Some(t),
                    Ok(t) => f.from = Some(t),
                    Err(e) => {
                        errors.insert(name.into(), e);
                    }
                }
            }
        }
        if let Some(l) = &q.limit {
            match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = n,
                _ => {
                    errors.insert(
                        "limit".into(),
                        format!("use a whole number from 1 to {MAX_LIMIT}"),
                    );
                }
            }
        }
        if let Some(c) = &q.cursor {
            if is_entry_id(c) {
                f.before = Some(c.clone());
            } else {
                errors.insert(
                    "cursor".into(),
                    "use the next_cursor of an earlier page".into(),
                );
            }
        }
        if errors.is_empty() {
            Ok(f)
        } else {
            Err(ApiError::Invalid(errors))
        }
    }

    /// True when an entry written at `nanos` lies within `from` and `to`.
    fn in_time(&self, nanos: i128) -> bool {
        self.from.is_none_or(|t| nanos >= t.unix_timestamp_nanos())
            && self.to.is_none_or(|t| nanos < t.unix_timestamp_nanos())
    }

    fn matches(&self, entry: &Value) -> bool {
        self.record
            .as_ref()
            .is_none_or(|r| entry["record_id"].as_str() == Some(r))
            && self
                .key
                .as_ref()
                .is_none_or(|k| entry["actor"]["name"].as_str() == Some(k))
    }
}

/// `GET /v1/audit` (admin): audit entries as stored, newest first (by id,
/// which sorts by time), filtered by `record`, `key` (the key's name),
/// `from`, `to`; `limit` (1 to 1000, default 100) a page, `cursor` the
/// `next_cursor` of the previous page. Reading the log is audited itself.
pub async fn list(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Admin>,
    client: ClientAddr,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let f = ListFilter::parse(&q)?;
    let mut access = Access::new("audit.read", "GET /v1/audit");
    for (name, value) in [
        ("record", &q.record),
        ("key", &q.key),
        ("from", &q.from),
        ("to", &q.to),
        ("limit", &q.limit),
        ("cursor", &q.cursor),
    ] {
        if let Some(v) = value {
            access = access.filter(name, v);
        }
    }
    audited(&s, &caller, access, &headers, client).await?;

    // One listing of the whole log a page, and a read of each entry a filter
    // looks into: the cost grows with the log (a walk by day can come later).
    let mut ids: Vec<(String, crate::store::ObjectKey)> = s
        .store
        .list("audit/")
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .into_iter()
        .filter_map(|k| {
            let id = k.as_str().rsplit('/').next()?.strip_suffix(".json")?;
            (is_entry_id(id) && id_nanos(id).is_some_and(|n| f.in_time(n)))
                .then(|| (id.to_owned(), k.clone()))
        })
        .filter(|(id, _)| f.before.as_ref().is_none_or(|b| id < b))
        .collect();
    ids.sort_by(|a, b| b.0.cmp(&a.0));
    let mut entries = Vec::new();
    let mut more = false;
    for (id, key) in ids {
        let Some(bytes) = s
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
        else {
            continue;
        };
        let entry: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(key = %key, error = %e, "an audit entry is not JSON; `records verify` reports it");
                continue;
            }
        };
        if !f.matches(&entry) {
            continue;
        }
        if entries.len() == f.limit {
            more = true;
            break;
        }
        entries.push((id, entry));
    }
    let next_cursor = more
        .then(|| entries.last().map(|(id, _)| id.clone()))
        .flatten();
    Ok(Json(json!({
        "entries": entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(reason: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            REASON_HEADER,
            axum::http::HeaderValue::from_str(reason).expect("value"),
        );
        h
    }

    #[test]
    fn a_required_reason_must_be_given_short_and_on_one_line() {
        let a = Access::new("records.audio", "GET /v1/records/{id}/audio").reason_required();
        match a.reason(&HeaderMap::new()) {
            Err(ApiError::BadRequest(m)) => assert!(m.contains("X-Callproof-Reason"), "{m}"),
            other => panic!("expected 400, got {other:?}"),
        }
        assert!(matches!(
            a.reason(&headers("   ")),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            a.reason(&headers(&"x".repeat(501))),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            a.reason(&headers("dispute\tD-1")),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(
            a.reason(&headers("  dispute D-118 "))
                .expect("ok")
                .as_deref(),
            Some("dispute D-118")
        );
        let optional = Access::new("records.read", "GET /v1/records/{id}");
        assert_eq!(optional.reason(&HeaderMap::new()).expect("ok"), None);
    }

    #[test]
    fn a_body_reason_counts_when_the_header_is_absent() {
        let a = Access::new("records.playback", "POST /v1/records/{id}/playback")
            .reason_required()
            .body_reason(Some("listening for D-7"));
        assert_eq!(
            a.reason(&HeaderMap::new()).expect("ok").as_deref(),
            Some("listening for D-7")
        );
        assert_eq!(
            a.reason(&headers("header wins")).expect("ok").as_deref(),
            Some("header wins")
        );
        match a.body_reason(None).reason(&HeaderMap::new()) {
            Err(ApiError::BadRequest(m)) => assert!(m.contains("\"reason\""), "{m}"),
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn phone_hashes_are_keyed_labelled_and_stable() {
        let a = phone_hash("secret-one", "+15551230001");
        assert!(a.starts_with("hmac-sha256:"), "{a}");
        assert_eq!(a.len(), "hmac-sha256:".len() + 64);
        assert!(!a.contains("5551230001"));
        assert_eq!(a, phone_hash("secret-one", " +15551230001 "));
        assert_ne!(a, phone_hash("secret-two", "+15551230001"));
        assert_ne!(a, phone_hash("secret-one", "+15551230002"));
    }

    #[test]
    fn entry_ids_are_recognised() {
        assert!(is_entry_id("01796083000000000000-0a1b2c3d"));
        assert!(!is_entry_id("01796083000000000000-0A1B2C3D"));
        assert!(!is_entry_id("0179608300000000000-0a1b2c3d"));
        assert!(!is_entry_id("../../../etc"));
    }
}
