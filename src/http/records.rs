//! The compliance read API: search records, read one (any version) byte for byte,
//! list its versions, and stream its audio with HTTP Range so a player can seek.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::audit::{audited, Access};
use super::client::ClientAddr;
use super::extract::{Compliance, Key};
use super::playback;
use super::{ApiError, AppState};
use crate::confirmations::Outcome;
use crate::domain::{ChangeKind, ConfirmationId, ConfirmationNumber, PhoneNumber};
use crate::record::{AudioRole, ConfirmationRecord};

/// Default and largest page size.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// Query parameters of `GET /v1/records`, as text; checked in [`Filter::parse`].
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    account_id: Option<String>,
    phone: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    confirmation_number: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

struct Filter {
    account_id: Option<String>,
    phone: Option<PhoneNumber>,
    kind: Option<ChangeKind>,
    outcome: Option<Outcome>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    number: Option<ConfirmationNumber>,
    limit: usize,
    after: Option<(i128, String)>,
}

/// A time bound: RFC 3339, or a date (from: its start; to: the next day's start).
pub(super) fn parse_bound(text: &str, end_of_day: bool) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let date = Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| "use a date like 2026-11-23 or a time like 2026-11-23T08:00:00Z".to_owned())?;
    let day = date.midnight().assume_utc();
    Ok(if end_of_day {
        day + time::Duration::DAY
    } else {
        day
    })
}

impl Filter {
    fn parse(q: ListQuery) -> Result<Filter, ApiError> {
        let mut errors = BTreeMap::new();
        let mut check = |name: &str, r: Result<(), String>| {
            if let Err(e) = r {
                errors.insert(name.to_owned(), e);
            }
        };
        let mut f = Filter {
            account_id: q.account_id,
            phone: None,
            kind: None,
            outcome: None,
            from: None,
            to: None,
            number: None,
            limit: DEFAULT_LIMIT,
            after: None,
        };
        if let Some(p) = q.phone {
            check("phone", p.parse().map(|p| f.phone = Some(p)));
        }
        if let Some(k) = q.kind {
            check("kind", k.parse().map(|k| f.kind = Some(k)));
        }
        if let Some(o) = q.outcome {
            check(
                "outcome",
                serde_json::from_value(Value::String(o))
                    .map(|o| f.outcome = Some(o))
                    .map_err(|_| {
                        "use confirmed, declined, no_answer, transferred_to_agent or abandoned"
                            .into()
                    }),
            );
        }
        if let Some(t) = q.from {
            check("from", parse_bound(&t, false).map(|t| f.from = Some(t)));
        }
        if let Some(t) = q.to {
            check("to", parse_bound(&t, true).map(|t| f.to = Some(t)));
        }
        if let Some(n) = q.confirmation_number {
            check("confirmation_number", n.parse().map(|n| f.number = Some(n)));
        }
        if let Some(l) = q.limit {
            check(
                "limit",
                match l.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => {
                        f.limit = n;
                        Ok(())
                    }
                    _ => Err(format!("use a whole number from 1 to {MAX_LIMIT}")),
                },
            );
        }
        if let Some(c) = q.cursor {
            let parsed = c.split_once('_').and_then(|(t, id)| {
                Some((
                    t.parse::<i128>().ok()?.checked_neg()?,
                    id.parse::<ConfirmationId>().ok()?.to_string(),
                ))
            });
            check(
                "cursor",
                parsed
                    .map(|p| f.after = Some(p))
                    .ok_or_else(|| "use the next_cursor of an earlier page".into()),
            );
        }
        if errors.is_empty() {
            Ok(f)
        } else {
            Err(ApiError::Invalid(errors))
        }
    }

    fn matches(&self, r: &ConfirmationRecord) -> bool {
        let c = &r.confirmation;
        self.account_id.as_ref().is_none_or(|a| *a == c.account_id)
            && self.kind.is_none_or(|k| k == c.kind)
            && self.outcome.is_none_or(|o| o == r.outcome.status)
            && self
                .number
                .as_ref()
                .is_none_or(|n| *n == c.confirmation_number)
            && self.from.is_none_or(|t| c.requested_at >= t)
            && self.to.is_none_or(|t| c.requested_at < t)
    }
}

/// Newest first, then by id: the order pages follow.
fn sort_key(r: &ConfirmationRecord) -> (i128, String) {
    (
        -r.confirmation.requested_at.unix_timestamp_nanos(),
        r.record_id.to_string(),
    )
}

fn summary(r: &ConfirmationRecord) -> Value {
    json!({
        "record_id": r.record_id,
        "version": r.version,
        "status": r.status,
        "confirmation_number": r.confirmation.confirmation_number,
        "account_id": r.confirmation.account_id,
        "kind": r.confirmation.kind,
        "outcome": r.outcome.status,
        "requested_at": r.confirmation.requested_at.format(&Rfc3339).unwrap_or_default(),
        "outcome_at": r.outcome.at.format(&Rfc3339).unwrap_or_default(),
        "customer_phone_masked": r.confirmation.customer_phone_masked,
        "has_audio": r.recording.as_ref().is_some_and(|rec| rec.decode.ok),
    })
}

/// The audit description of a search: every filter given, the phone as its keyed hash.
fn search_access(q: &ListQuery) -> Access<'static> {
    let mut access = Access::new("records.search", "GET /v1/records");
    if let Some(p) = &q.phone {
        access = access.phone("phone", p);
    }
    for (name, value) in [
        ("account_id", &q.account_id),
        ("kind", &q.kind),
        ("outcome", &q.outcome),
        ("from", &q.from),
        ("to", &q.to),
        ("confirmation_number", &q.confirmation_number),
        ("limit", &q.limit),
        ("cursor", &q.cursor),
    ] {
        if let Some(v) = value {
            access = access.filter(name, v);
        }
    }
    access
}

/// `GET /v1/records` (compliance): the newest version of each matching record, a page at a time.
pub async fn list(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let access = search_access(&q);
    let filter = Filter::parse(q)?;
    audited(&s, &caller, access, &headers, client).await?;
    let records = &s.records;
    let mut found = Vec::new();
    for id in records.ids().await? {
        let Some(r) = records.latest(&id).await? else {
            continue;
        };
        if !filter.matches(&r) {
            continue;
        }
        if let Some(phone) = &filter.phone {
            let request = s.confirmations.request(&id).await?;
            if request.is_none_or(|req| req.customer.phone != *phone) {
                continue;
            }
        }
        found.push(r);
    }
    found.sort_by_key(sort_key);
    let start = match &filter.after {
        Some(after) => found
            .iter()
            .position(|r| sort_key(r) > *after)
            .unwrap_or(found.len()),
        None => 0,
    };
    let page: Vec<&ConfirmationRecord> = found[start..].iter().take(filter.limit).collect();
    let next_cursor = (start + page.len() < found.len())
        .then(|| {
            page.last()
                .map(|r| format!("{}_{}", -sort_key(r).0, r.record_id))
        })
        .flatten();
    tracing::info!(role = %caller.role, key = %caller.key_name, results = page.len(), "records searched");
    Ok(Json(json!({
        "records": page.iter().map(|r| summary(r)).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

/// `version=N` on record reads.
#[derive(Debug, Default, Deserialize)]
pub struct RecordQuery {
    version: Option<u32>,
}

pub(super) async fn load(
    s: &AppState,
    id: &str,
    version: Option<u32>,
) -> Result<ConfirmationRecord, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let records = &s.records;
    let r = match version {
        Some(v) => records.version(&id, v).await?,
        None => records.latest(&id).await?,
    };
    r.ok_or(ApiError::NotFound)
}

/// `GET /v1/records/{id}` (compliance): the newest version, or `?version=N`,
/// exactly as stored: the bytes written once, not a re-serialisation, so a
/// hash or signature over them holds. `X-Content-SHA256` is their digest.
pub async fn show(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let asked = q.version.map(|v| v.to_string());
    let mut access = Access::new("records.read", "GET /v1/records/{id}").record(id.as_str());
    if let Some(v) = &asked {
        access = access.filter("version", v);
    }
    audited(&s, &caller, access, &headers, client).await?;
    let records = &s.records;
    let version = match q.version {
        Some(v) => v,
        None => *records
            .versions(&id)
            .await?
            .last()
            .ok_or(ApiError::NotFound)?,
    };
    let bytes = records
        .version_bytes(&id, version)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(role = %caller.role, key = %caller.key_name, record = %id, version, "record read");
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-content-sha256", hex::encode(Sha256::digest(&bytes)))
        .body(Body::from(bytes))
        .map_err(|e| ApiError::Internal(e.into()))
}

/// `GET /v1/records/{id}/versions` (compliance): every stored version, oldest
/// first, with what changed between them and the digest of each one's bytes.
pub async fn versions(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let access = Access::new("records.read", "GET /v1/records/{id}/versions").record(id.as_str());
    audited(&s, &caller, access, &headers, client).await?;
    let records = &s.records;
    let numbers = records.versions(&id).await?;
    let mut out = Vec::with_capacity(numbers.len());
    for (i, &n) in numbers.iter().enumerate() {
        let Some(bytes) = records.version_bytes(&id, n).await? else {
            continue;
        };
        let r: ConfirmationRecord = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!(
                "record {id} version {n} is unreadable: {e}"
            ))
        })?;
        out.push(json!({
            "version": r.version,
            "created_at": r.created_at.format(&Rfc3339).unwrap_or_default(),
            "status": r.status,
            "incomplete_reason": r.incomplete_reason,
            "outcome": r.outcome.status,
            "has_audio": r.recording.as_ref().is_some_and(|rec| rec.decode.ok),
            "supersedes": r.supersedes,
            "superseded_by": numbers.get(i + 1),
            "byte_size": bytes.len(),
            "sha256": hex::encode(Sha256::digest(&bytes)),
        }));
    }
    let latest = numbers.last().ok_or(ApiError::NotFound)?;
    tracing::info!(role = %caller.role, key = %caller.key_name, record = %id, "record versions read");
    Ok(Json(json!({
        "record_id": id,
        "latest": latest,
        "versions": out,
    })))
}

/// A byte range asked for with `Range`, resolved against the object size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable single range: send everything.
    Whole,
    /// Bytes `start..end` (end exclusive).
    Part(u64, u64),
    /// The range lies outside the object: 416.
    Unsatisfiable,
}

/// Resolves a `Range` header of the form `bytes=a-b`, `bytes=a-` or `bytes=-n`.
/// Several ranges, or another unit, fall back to the whole object.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(last)) if start <= last => Some((start, last.saturating_add(1).min(size))),
        (Ok(start), Err(_)) if b.is_empty() => Some((start, size)),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => Some((size.saturating_sub(n), size)),
        _ => return RangeAsk::Whole,
    };
    match range {
        Some((start, end)) if start < size && start < end => RangeAsk::Part(start, end),
        _ => RangeAsk::Unsatisfiable,
    }
}

/// `version=N`, `original=true` and a playback grant `t` on the audio route.
#[derive(Debug, Default, Deserialize)]
pub struct AudioQuery {
    version: Option<u32>,
    original: Option<bool>,
    t: Option<String>,
}

/// `GET /v1/records/{id}/audio` (compliance, with `X-Callproof-Reason`; each
/// request audited): the archival WAV, or `?original=true` for the
/// provider's bytes; honours `Range`. With `?t=` from a playback URL it
/// needs neither key nor reason and serves exactly the audio the grant names
/// (while the replay page session it was issued to, if any, is alive).
pub async fn audio(
    State(s): State<AppState>,
    key: Result<Key<Compliance>, ApiError>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<AudioQuery>,
) -> Result<Response, ApiError> {
    if let Some(token) = &q.t {
        let grant = match playback::verify(
            &s.credentials.token_secret,
            token,
            &id,
            playback::GrantKind::Audio,
            OffsetDateTime::now_utc(),
        ) {
            Ok(g) => g,
            Err(e) => return Ok(e.into_response()),
        };
        if let Err(refused) = super::ui::grant_session_alive(&s, &grant).await {
            return Ok(refused);
        }
        let record = load(&s, &id, Some(grant.version)).await?;
        let who = format!("playback {}", grant.audit_id);
        return serve_audio(&s, &record, grant.role(), &headers, &who).await;
    }
    let caller = key?.caller;
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let original = q.original.unwrap_or(false);
    let asked = q.version.map(|v| v.to_string());
    let mut access = Access::new("records.audio", "GET /v1/records/{id}/audio")
        .record(id.as_str())
        .reason_required();
    if let Some(v) = &asked {
        access = access.filter("version", v);
    }
    if original {
        access = access.filter("original", "true");
    }
    let entry = audited(&s, &caller, access, &headers, client).await?;
    let record = load(&s, id.as_str(), q.version).await?;
    let want = if original {
        AudioRole::Original
    } else {
        AudioRole::Archival
    };
    let who = format!("{} {} audit {}", caller.role, caller.key_name, entry.id);
    serve_audio(&s, &record, want, &headers, &who).await
}

/// Streams the `want` audio of `record`, or the range `headers` ask for;
/// `who` names the access in the log.
async fn serve_audio(
    s: &AppState,
    record: &ConfirmationRecord,
    want: AudioRole,
    headers: &HeaderMap,
    who: &str,
) -> Result<Response, ApiError> {
    let object = record
        .recording
        .as_ref()
        .and_then(|rec| rec.audio.iter().find(|a| a.role == want))
        .ok_or(ApiError::NotFound)?;
    let key = crate::store::ObjectKey::new(object.key.clone())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    let store = &s.store;
    let size = store
        .head(&key)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound)?
        .size;
    let content_type = match object.format.as_str() {
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    };
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, start, end) = match range {
        RangeAsk::Whole => (StatusCode::OK, 0, size),
        RangeAsk::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
        RangeAsk::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response())
        }
    };
    let stream = store
        .read_range(&key, start..end)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(by = %who, record = %record.record_id, role_of_audio = ?want, start, end, "record audio served");
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT_RANGES, "bytes")
        // Evidence audio is replayed, not kept: no copy in a browser's cache.
        .header(header::CACHE_CONTROL, "private, no-store")
        .header(header::CONTENT_LENGTH, end - start)
        .header("x-content-sha256", object.sha256.as_str());
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    response
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_rfc_9110() {
        assert_eq!(parse_range(None, 100), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), RangeAsk::Part(0, 10));
        assert_eq!(parse_range(Some("bytes=90-"), 100), RangeAsk::Part(90, 100));
        assert_eq!(parse_range(Some("bytes=-10"), 100), RangeAsk::Part(90, 100));
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100),
            RangeAsk::Part(50, 100)
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeAsk::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeAsk::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), RangeAsk::Whole);
    }

    #[test]
    fn bad_filters_name_their_fields() {
        let q = ListQuery {
            kind: Some("upgrade".into()),
            from: Some("yesterday".into()),
            limit: Some("0".into()),
            cursor: Some("x".into()),
            ..ListQuery::default()
        };
        match Filter::parse(q) {
            Err(ApiError::Invalid(f)) => assert_eq!(
                f.into_keys().collect::<Vec<_>>(),
                ["cursor", "from", "kind", "limit"]
            ),
            _ => panic!("expected 422"),
        }
    }

    #[test]
    fn a_date_bound_covers_the_whole_day() {
        let to = parse_bound("2026-11-23", true).unwrap();
        assert_eq!(to.format(&Rfc3339).unwrap(), "2026-11-24T00:00:00Z");
    }
}
