//! The agent API: create a confirmation request and read where it stands.
//! Input is checked field by field; every problem is named in one 422 answer.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::extract::{Agent, Key};
use super::{ApiError, AppState};
use crate::confirmations::{ConfirmationRequest, ConfirmationView, Customer};
use crate::domain::{
    ChangeItem, ChangeKind, ConfirmationId, ConfirmationNumber, Locale, PhoneNumber,
};
use crate::identity::NewIdentity;

/// Most change items in one request.
const MAX_ITEMS: usize = 20;
/// Top-level fields a request may have.
const FIELDS: &[&str] = &[
    "account_id",
    "kind",
    "change",
    "customer",
    "agent_id",
    "locale",
    "callback_url",
    "identity",
];

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Collects per-field errors while reading a JSON object.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    errors: BTreeMap<String, String>,
}

impl<'a> Reader<'a> {
    fn error(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.entry(path.into()).or_insert_with(|| msg.into());
    }

    /// A required string of 1..=max characters without control characters.
    fn text(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        name: &str,
        max: usize,
        required: bool,
    ) -> Option<&'a str> {
        let full = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        match obj.get(name) {
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                self.error(full, "is required");
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.error(full, "must not be empty");
                None
            }
            Some(Value::String(s))
                if s.chars().count() > max || s.chars().any(char::is_control) =>
            {
                self.error(
                    full,
                    format!("use at most {max} characters and no control characters"),
                );
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.error(full, "must be a string");
                None
            }
        }
    }

    fn parsed<T: std::str::FromStr<Err = String>>(
        &mut self,
        name: &str,
        required: bool,
    ) -> Option<T> {
        let text = self.text(self.obj, "", name, 64, required)?;
        match text.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(name, e);
                None
            }
        }
    }
}

fn valid_account_id(s: &str) -> bool {
    s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn valid_callback_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && s.len() <= 2048
        && !s.contains(char::is_whitespace)
}

/// The parts of a valid new request, before ids and times are given.
struct NewRequest {
    account_id: String,
    kind: ChangeKind,
    change: Vec<ChangeItem>,
    customer: Customer,
    agent_id: String,
    locale: Locale,
    callback_url: Option<String>,
    identity: NewIdentity,
}

fn parse_new(body: &[u8]) -> Result<NewRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))?;
    let mut r = Reader {
        obj,
        errors: BTreeMap::new(),
    };
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            r.error(
                key.clone(),
                format!("unknown field; the fields are {}", FIELDS.join(", ")),
            );
        }
    }
    let account_id = r.text(obj, "", "account_id", 64, true);
    if let Some(a) = account_id {
        if !valid_account_id(a) {
            r.error("account_id", "use up to 64 letters, digits and - _ . :");
        }
    }
    let kind: Option<ChangeKind> = r.parsed("kind", true);
    let agent_id = r.text(obj, "", "agent_id", 64, true);
    let locale: Option<Locale> = match obj.get("locale") {
        None | Some(Value::Null) => Some(Locale::EnUs),
        Some(_) => r.parsed("locale", true),
    };
    let callback_url = r.text(obj, "", "callback_url", 2048, false);
    if let Some(u) = callback_url {
        if !valid_callback_url(u) {
            r.error("callback_url", "use an http:// or https:// URL with a host");
        }
    }
    let customer = match obj.get("customer") {
        Some(Value::Object(c)) => {
            let name = r.text(c, "customer", "name", 100, true);
            let phone = r.text(c, "customer", "phone", 20, true).and_then(|p| {
                match p.parse::<PhoneNumber>() {
                    Ok(p) => Some(p),
                    Err(e) => {
                        r.error("customer.phone", e);
                        None
                    }
                }
            });
            name.zip(phone).map(|(name, phone)| Customer {
                name: name.trim().to_owned(),
                phone,
            })
        }
        None | Some(Value::Null) => {
            r.error("customer", "is required: an object with name and phone");
            None
        }
        Some(_) => {
            r.error("customer", "must be an object with name and phone");
            None
        }
    };
    let mut change = Vec::new();
    match obj.get("change") {
        Some(Value::Array(items)) if items.is_empty() || items.len() > MAX_ITEMS => {
            r.error("change", format!("give 1 to {MAX_ITEMS} items"));
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Some(o) = item.as_object() else {
                    r.error(
                        format!("change[{i}]"),
                        "must be an object with field, before, after",
                    );
                    continue;
                };
                let path = format!("change[{i}]");
                let field = r.text(o, &path, "field", 64, true).unwrap_or("");
                let label = r.text(o, &path, "label", 200, false);
                let before = r.text(o, &path, "before", 200, false);
                let after = r.text(o, &path, "after", 200, false);
                let sensitive = match o.get("sensitive") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        r.error(format!("{path}.sensitive"), "must be true or false");
                        false
                    }
                };
                if field.is_empty() {
                    continue;
                }
                match ChangeItem::new(i, field, label, before, after, sensitive) {
                    Ok(item) => change.push(item),
                    Err(errs) => {
                        for e in errs {
                            r.error(e.path, e.message);
                        }
                    }
                }
            }
        }
        None | Some(Value::Null) => {
            r.error("change", "is required: a list of {field, before, after}")
        }
        Some(_) => r.error("change", "must be a list of {field, before, after}"),
    }
    let identity = match NewIdentity::parse(obj.get("identity")) {
        Ok(i) => Some(i),
        Err(errors) => {
            for (field, why) in errors {
                r.error(field, why);
            }
            None
        }
    };
    if !r.errors.is_empty() {
        return Err(ApiError::Invalid(r.errors));
    }
    match (account_id, kind, agent_id, locale, customer) {
        (Some(account_id), Some(kind), Some(agent_id), Some(locale), Some(customer)) => {
            Ok(NewRequest {
                identity: identity.unwrap_or(NewIdentity::None),
                account_id: account_id.to_owned(),
                kind,
                change,
                customer,
                agent_id: agent_id.trim().to_owned(),
                locale,
                callback_url: callback_url.map(str::to_owned),
            })
        }
        _ => Err(ApiError::BadRequest("the request could not be read".into())),
    }
}

/// `POST /v1/confirmations` (agent role): creates a request and its transfer URL.
pub async fn create_confirmation(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Agent>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new = parse_new(&body)?;
    if let Some(url) = &new.callback_url {
        if let Err(why) = s.callbacks.check_url(url).await {
            return Err(ApiError::Invalid(BTreeMap::from([(
                "callback_url".to_owned(),
                why,
            )])));
        }
    }
    let now = OffsetDateTime::now_utc();
    let request = ConfirmationRequest {
        id: ConfirmationId::generate(),
        confirmation_number: ConfirmationNumber::generate(),
        account_id: new.account_id,
        kind: new.kind,
        change: new.change,
        customer: new.customer,
        agent_id: new.agent_id,
        created_by_key: Some(caller.key_name),
        locale: new.locale,
        callback_url: new.callback_url,
        created_at: now,
        expires_at: now + Duration::seconds(s.config.confirmation_ttl_secs as i64),
        identity: new.identity.method(),
    };
    // The callback job first: it waits for the request's end, and no crash
    // can leave a stored request whose outcome is never sent.
    s.callbacks.enqueue(&request).await?;
    // The check's MACs and lookups next: a request is never stored without them.
    let code_until = request
        .expires_at
        .min(now + Duration::seconds(s.config.otp_ttl_secs as i64));
    let one_time_code = s
        .identity
        .register(&request, new.identity, code_until)
        .await?;
    s.confirmations.create_request(&request).await?;
    tracing::info!(confirmation = %request.id, kind = %request.kind, agent = %request.agent_id, key = request.created_by_key.as_deref().unwrap_or_default(), "confirmation requested");
    let transfer_url = s.links(now).start_url(&request.id, request.expires_at);
    let mut body = json!({
        "id": request.id,
        "confirmation_number": request.confirmation_number,
        "transfer_url": transfer_url,
        "status": "pending",
        "expires_at": rfc3339(request.expires_at),
    });
    if let Some(code) = one_time_code {
        // Answered this once; callproof keeps only its MAC.
        body["one_time_code"] = json!(code);
        body["one_time_code_expires_at"] = json!(rfc3339(code_until));
    }
    let location = format!("/v1/confirmations/{}", request.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// The JSON view of a request with its facts.
pub fn view_json(v: &ConfirmationView, now: OffsetDateTime) -> Value {
    let r = &v.request;
    json!({
        "id": r.id,
        "confirmation_number": r.confirmation_number,
        "status": v.status(now),
        "account_id": r.account_id,
        "kind": r.kind,
        "locale": r.locale,
        "agent_id": r.agent_id,
        "created_by_key": r.created_by_key,
        "customer": {"name": r.customer.name, "phone": r.customer.phone},
        "change": r.change,
        "callback_url": r.callback_url,
        "created_at": rfc3339(r.created_at),
        "expires_at": rfc3339(r.expires_at),
        "call": v.call.as_ref().map(|c| json!({"call_sid": c.call_sid, "from": c.from_masked, "started_at": rfc3339(c.started_at)})),
        "events": v.events,
        "outcome": v.outcome.as_ref().map(|o| json!({"outcome": o.outcome, "call_sid": o.call_sid, "at": rfc3339(o.at)})),
    })
}

/// `GET /v1/confirmations/{id}` (agent role): status and consent events.
pub async fn get_confirmation(
    State(s): State<AppState>,
    _: Key<Agent>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let view = s.confirmations.view(&id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(view_json(&view, OffsetDateTime::now_utc())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"account_id":"ACC-1001","kind":"billing","change":[{"field":"card_number","label":"card on file","before":"4111111111111111","after":"5500005555555559","sensitive":true}],"customer":{"name":"Dana Reyes","phone":"+15551230001"},"agent_id":"agent-7","locale":"en-US"}"#;

    #[test]
    fn the_documented_example_is_accepted_and_masked() {
        let r = parse_new(GOOD.as_bytes())
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(r.kind, ChangeKind::Billing);
        assert_eq!(r.change[0].after.as_deref(), Some("************5559"));
    }

    fn invalid_fields(body: &str) -> Vec<String> {
        match parse_new(body.as_bytes()) {
            Err(ApiError::Invalid(f)) => f.into_keys().collect(),
            Err(e) => panic!("expected 422, got {e}"),
            Ok(_) => panic!("expected 422, got a valid request"),
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let body = r#"{"account_id":"ACC 1","kind":"upgrade","change":[{"field":"x"}],"customer":{"name":"","phone":"555"},"agent_id":"a","locale":"fr-FR","callback_url":"ftp://x","colour":"red"}"#;
        assert_eq!(
            invalid_fields(body),
            [
                "account_id",
                "callback_url",
                "change[0].after",
                "colour",
                "customer.name",
                "customer.phone",
                "kind",
                "locale"
            ]
        );
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            invalid_fields("{}"),
            ["account_id", "agent_id", "change", "customer", "kind"]
        );
    }

    #[test]
    fn wrong_types_are_named_not_crashed_on() {
        let body = r#"{"account_id":7,"kind":"plan","change":"all","customer":[],"agent_id":"a"}"#;
        assert_eq!(invalid_fields(body), ["account_id", "change", "customer"]);
    }

    #[test]
    fn non_json_is_a_bad_request() {
        assert!(matches!(
            parse_new(b"{not json"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(parse_new(b"[1]"), Err(ApiError::BadRequest(_))));
    }
}
