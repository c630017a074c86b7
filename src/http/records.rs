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
use super::extract::{Compliance, Key, KeyUnlessGrant};
use super::playback;
use super::{ApiError, AppState};
use crate::confirmations::Outcome;
use crate::domain::{ChangeKind, ConfirmationId, ConfirmationNumber, PhoneNumber};
use crate::index::{self, follow::Indexer, PhoneKey};
use crate::record::{AudioRole, ConfirmationRecord, RecordStatus};

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
    agent_id: Option<String>,
    status: Option<String>,
    held: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The JSON body of `POST /v1/records/search`: the filters of `GET
/// /v1/records`, and the phone number, which never travels in a URL.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    account_id: Option<String>,
    phone: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    confirmation_number: Option<String>,
    agent_id: Option<String>,
    status: Option<String>,
    held: Option<Value>,
    limit: Option<Value>,
    cursor: Option<String>,
}

/// A JSON scalar as the query string would carry it: `50` and `"50"` alike.
fn as_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl From<SearchBody> for ListQuery {
    fn from(b: SearchBody) -> ListQuery {
        ListQuery {
            account_id: b.account_id,
            phone: b.phone,
            kind: b.kind,
            outcome: b.outcome,
            from: b.from,
            to: b.to,
            confirmation_number: b.confirmation_number,
            agent_id: b.agent_id,
            status: b.status,
            held: b.held.map(as_text),
            limit: b.limit.map(as_text),
            cursor: b.cursor,
        }
    }
}

struct Filter {
    account_id: Option<String>,
    phone: Option<PhoneNumber>,
    kind: Option<ChangeKind>,
    outcome: Option<Outcome>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    number: Option<ConfirmationNumber>,
    agent_id: Option<String>,
    status: Option<RecordStatus>,
    held: Option<bool>,
    limit: usize,
    after: Option<(i128, String)>,
}

/// The outcomes a record can have, as the `outcome` filter takes them.
fn record_outcomes() -> String {
    let names: Vec<&str> = Outcome::ALL
        .into_iter()
        .filter(|o| o.has_record())
        .map(Outcome::as_str)
        .collect();
    names.join(", ")
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
            agent_id: q.agent_id,
            status: None,
            held: None,
            limit: DEFAULT_LIMIT,
            after: None,
        };
        if let Some(st) = q.status {
            check(
                "status",
                serde_json::from_value(Value::String(st))
                    .map(|st| f.status = Some(st))
                    .map_err(|_| "use complete or incomplete".into()),
            );
        }
        if let Some(h) = q.held {
            check(
                "held",
                h.parse::<bool>()
                    .map(|h| f.held = Some(h))
                    .map_err(|_| "use true or false".into()),
            );
        }
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
                    .map_err(|_| format!("use one of {}", record_outcomes())),
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
            && self.agent_id.as_ref().is_none_or(|a| *a == c.agent_id)
            && self.status.is_none_or(|st| st == r.status)
    }

    /// The index's form of these filters; the phone as its keyed hash.
    fn for_index(&self, phones: &PhoneKey) -> index::Filter {
        let text =
            |v: serde_json::Result<Value>| v.ok().and_then(|v| v.as_str().map(str::to_owned));
        index::Filter {
            account_id: self.account_id.clone(),
            phone_hmac: self.phone.as_ref().map(|p| phones.phone(p.as_str())),
            confirmation_number: self.number.as_ref().map(|n| n.to_string()),
            kind: self.kind.and_then(|k| text(serde_json::to_value(k))),
            outcome: self.outcome.and_then(|o| text(serde_json::to_value(o))),
            status: self.status.and_then(|st| text(serde_json::to_value(st))),
            agent_id: self.agent_id.clone(),
            from: self.from,
            to: self.to,
            held: self.held,
        }
    }
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
        "state": "ok",
    })
}

/// The audit description of a search: every filter given, the phone as its keyed hash.
fn search_access(q: &ListQuery, route: &'static str) -> Access<'static> {
    let mut access = Access::new("records.search", route);
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
        ("agent_id", &q.agent_id),
        ("status", &q.status),
        ("held", &q.held),
        ("limit", &q.limit),
        ("cursor", &q.cursor),
    ] {
        if let Some(v) = value {
            access = access.filter(name, v);
        }
    }
    access
}

/// `GET /v1/records` (compliance): the newest version of each matching
/// record, a page at a time, found by the search index. A phone number is
/// refused here: it would stay in URLs and logs; `POST /v1/records/search` takes it.
pub async fn list(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.phone.is_some() {
        return Err(ApiError::Invalid(BTreeMap::from([(
            "phone".to_owned(),
            "search by phone with POST /v1/records/search and the number in the JSON body: a URL ends up in browser history and proxy logs".to_owned(),
        )])));
    }
    search(&s, &caller, client, &headers, q, "GET /v1/records").await
}

/// `POST /v1/records/search` (compliance): [`list`] with the filters, the
/// phone number among them, in a JSON body.
pub async fn search_post(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Result<Json<SearchBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::Invalid(BTreeMap::from([(
            "body".to_owned(),
            format!(
                "{}; send a JSON object of filters with Content-Type: application/json",
                e.body_text()
            ),
        )]))
    })?;
    search(
        &s,
        &caller,
        client,
        &headers,
        body.into(),
        "POST /v1/records/search",
    )
    .await
}

/// What a search shows of one index row: the record as stored, or why not.
async fn shown(s: &AppState, filter: &Filter, row: &index::Row) -> Result<Option<Value>, ApiError> {
    let state_only = |state: &str| json!({ "record_id": row.record_id, "state": state });
    // An index row is not trusted to hold an id: it becomes a key only parsed.
    let Some(id) = Indexer::record_id(&row.record_id) else {
        tracing::warn!(record_id = %row.record_id, "an index row names no valid record id; rebuild the index (`callproof index rebuild`)");
        return Ok(None);
    };
    if row.purged {
        // Purged only where a tombstone says so.
        let tombstone = crate::evidence::tombstone::tombstone_key(id.as_str())?;
        let state = match s.store.head(&tombstone).await {
            Ok(Some(_)) => "purged",
            Ok(None) => "evidence_problem",
            Err(e) => {
                return Err(ApiError::Unavailable(format!(
                    "cannot read {tombstone}: {e}"
                )))
            }
        };
        return Ok(Some(state_only(state)));
    }
    let Some(bytes) = s.records.version_bytes(&id, row.version).await? else {
        return Ok(Some(state_only("missing")));
    };
    let record = match serde_json::from_slice::<ConfirmationRecord>(&bytes) {
        Ok(r) if hex::encode(Sha256::digest(&bytes)) == row.sha256 && r.record_id == id => r,
        _ => return Ok(Some(state_only("evidence_problem"))),
    };
    // The index decides which records, the store what they say: a row whose
    // record does not match the search is stale or changed, and left out.
    let mut matches = filter.matches(&record);
    if matches {
        if let Some(phone) = &filter.phone {
            // The record keeps only the masked number; the request has it.
            let request = s.confirmations.request(&id).await?;
            matches = request.is_some_and(|r| r.customer.phone == *phone);
        }
    }
    if matches {
        if let Some(held) = filter.held {
            let keys = s
                .indexer
                .trusted_keys()
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            let holds =
                crate::evidence::hold::read_holds(s.store.as_ref(), &keys, id.as_str()).await?;
            matches = holds.held() == held;
        }
    }
    if !matches {
        tracing::warn!(record_id = %row.record_id, "an index row does not match its record; `callproof index rebuild` repairs the index");
        return Ok(None);
    }
    Ok(Some(summary(&record)))
}

async fn search(
    s: &AppState,
    caller: &crate::auth::Caller,
    client: ClientAddr,
    headers: &HeaderMap,
    q: ListQuery,
    route: &'static str,
) -> Result<Json<Value>, ApiError> {
    let access = search_access(&q, route);
    let filter = Filter::parse(q)?;
    audited(s, caller, access, headers, client).await?;
    let indexer = &s.indexer;
    let state = indexer
        .usable()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let after = filter.after.as_ref().and_then(|(t, id)| {
        Some(index::Cursor {
            requested_at: OffsetDateTime::from_unix_timestamp_nanos(t.checked_neg()?).ok()?,
            record_id: id.clone(),
        })
    });
    let page = indexer
        .index()
        .search(
            &filter.for_index(indexer.phones()),
            after.as_ref(),
            filter.limit,
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut reads = Vec::new();
    for row in &page.rows {
        reads.push(shown(s, &filter, row));
    }
    let mut records = Vec::new();
    for chunk in futures_util::future::try_join_all(reads).await? {
        records.extend(chunk);
    }
    let next_cursor = page
        .next
        .map(|c| format!("{}_{}", c.requested_at.unix_timestamp_nanos(), c.record_id));
    // A seal after the index's last one means search may be behind the store.
    let index_seal = state.last_seal.seal;
    let head = match crate::evidence::seal::seal_key(index_seal + 1) {
        Ok(k) if matches!(s.store.head(&k).await, Ok(Some(_))) => index_seal + 1,
        _ => index_seal,
    };
    tracing::info!(role = %caller.role, key = %caller.key_name, results = records.len(), "records searched");
    Ok(Json(json!({
        "records": records,
        "next_cursor": next_cursor,
        "index_seal": index_seal,
        "head": head,
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
    key: KeyUnlessGrant<Compliance>,
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
    let caller = key.key()?.caller;
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
