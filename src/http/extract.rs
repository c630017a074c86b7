//! Extractors that refuse a request before its handler runs: an API key (or a
//! replay page session) of the needed role ([`Key`]), a provider webhook with a valid signature ([`Signed`]) and flow token ([`Hook`]).
//!
//! Handlers take these as arguments, so each reads: extract, call the domain,
//! render. A refusal changes nothing: 401/403 for keys and sessions (415 for
//! a session's body of another type than JSON), 400/403 for webhooks.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::webhook::{self, WebhookError};
use super::{ApiError, AppState};
use crate::auth::{Caller, Role};
use crate::flow::token::{FlowToken, Purpose};
use crate::provider::Params;

/// A role an endpoint needs.
pub trait NeedsRole: Send + Sync + 'static {
    /// True when a key of `role` may use the endpoint.
    fn allows(role: Role) -> bool;
    /// True when a replay page session may use the endpoint instead of a key.
    const SESSION: bool = false;
}

/// Endpoints any valid key may use.
pub struct AnyRole;

impl NeedsRole for AnyRole {
    fn allows(_: Role) -> bool {
        true
    }
}

/// Endpoints for phone agents.
pub struct Agent;
/// Endpoints for compliance staff.
pub struct Compliance;
/// Endpoints for operators.
pub struct Admin;

impl NeedsRole for Agent {
    fn allows(role: Role) -> bool {
        role.may(Role::Agent)
    }
}
impl NeedsRole for Compliance {
    fn allows(role: Role) -> bool {
        role.may(Role::Compliance)
    }
    const SESSION: bool = true;
}
impl NeedsRole for Admin {
    fn allows(role: Role) -> bool {
        role.may(Role::Admin)
    }
    const SESSION: bool = true;
}

/// The caller of an API endpoint, whose `Authorization: Bearer` key has role
/// `R` (or admin); for compliance and admin endpoints, a replay page session
/// cookie of such a key instead (see [`super::ui::authenticate`]).
pub struct Key<R: NeedsRole> {
    /// Who called: the key's role and name (a session's, as it signed in).
    pub caller: Caller,
    /// The replay page session, when the cookie authenticated the request.
    pub session: Option<super::ui::session::Session>,
    role: PhantomData<R>,
}

/// True when the request says its body is JSON (`application/json`, any parameters).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

impl AppState {
    /// Checks the Bearer key and that its role may do what `needed` allows.
    pub fn authorize(&self, headers: &HeaderMap, needed: Role) -> Result<Caller, ApiError> {
        self.authorize_if(headers, |role| role.may(needed))
    }

    /// Checks the Bearer key and that `allowed` accepts its role.
    fn authorize_if(
        &self,
        headers: &HeaderMap,
        allowed: impl Fn(Role) -> bool,
    ) -> Result<Caller, ApiError> {
        let key = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .ok_or(ApiError::Unauthorized)?;
        let caller = self.keys.role_of(key).ok_or(ApiError::Unauthorized)?;
        if allowed(caller.role) {
            Ok(caller)
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

impl<R: NeedsRole> FromRequestParts<AppState> for Key<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        // A bearer key wins: a page cannot send one, and API clients send no cookie.
        if R::SESSION
            && !parts
                .headers
                .contains_key(axum::http::header::AUTHORIZATION)
        {
            if let Some((caller, session)) = super::ui::authenticate(s, parts).await? {
                if !R::allows(caller.role) {
                    return Err(ApiError::Forbidden);
                }
                return Ok(Key {
                    caller,
                    session: Some(session),
                    role: PhantomData,
                });
            }
        }
        Ok(Key {
            caller: s.authorize_if(&parts.headers, R::allows)?,
            session: None,
            role: PhantomData,
        })
    }
}

/// The key or session of a route a grant in `?t=` opens instead (the audio
/// and export routes): `None`, with no key or cookie looked at, when the query
/// carries `t`, so the grant alone decides and a player's range requests
/// never re-issue the session cookie; otherwise the [`Key`] or why there is none.
pub struct KeyUnlessGrant<R: NeedsRole>(pub Option<Result<Key<R>, ApiError>>);

impl<R: NeedsRole> KeyUnlessGrant<R> {
    /// The key, when the request had to carry one.
    pub fn key(self) -> Result<Key<R>, ApiError> {
        self.0.unwrap_or(Err(ApiError::Unauthorized))
    }
}

/// True when the query of `uri` has a `t` parameter.
fn has_grant(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "t"))
}

impl<R: NeedsRole> FromRequestParts<AppState> for KeyUnlessGrant<R> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        if has_grant(&parts.uri) {
            return Ok(KeyUnlessGrant(None));
        }
        Ok(KeyUnlessGrant(Some(
            Key::<R>::from_request_parts(parts, s).await,
        )))
    }
}

/// A provider webhook whose body parsed and whose `X-Twilio-Signature` holds.
pub struct Signed {
    /// The webhook's parameters.
    pub params: Params,
    /// The URL it was sent to (its query carries the flow token, if any).
    pub uri: Uri,
    /// When it was verified.
    pub at: OffsetDateTime,
}

impl FromRequest<AppState> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let uri = match OriginalUri::from_request_parts(&mut parts, s).await {
            Ok(OriginalUri(u)) => u,
            Err(never) => match never {},
        };
        let headers = parts.headers.clone();
        let req = Request::from_parts(parts, body);
        // The body limit answers 413 here, as for every route.
        let body = Bytes::from_request(req, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let params =
            webhook::verify(s, &uri, &headers, &body).map_err(IntoResponse::into_response)?;
        Ok(Signed {
            params,
            uri,
            at: OffsetDateTime::now_utc(),
        })
    }
}

/// A purpose a flow token is issued for.
pub trait ForPurpose: Send + Sync + 'static {
    /// The purpose the token must carry.
    const PURPOSE: Purpose;
}

/// The transfer URL.
pub struct Start;
/// A consent question's action.
pub struct Answer;
/// The recording status callback.
pub struct Recording;

impl ForPurpose for Start {
    const PURPOSE: Purpose = Purpose::Start;
}
impl ForPurpose for Answer {
    const PURPOSE: Purpose = Purpose::Answer;
}
impl ForPurpose for Recording {
    const PURPOSE: Purpose = Purpose::Recording;
}

/// A signed webhook of the flow whose token is valid for purpose `P`.
pub struct Hook<P: ForPurpose> {
    /// The webhook's parameters.
    pub params: Params,
    /// The verified flow token.
    pub token: FlowToken,
    /// When it was verified.
    pub at: OffsetDateTime,
    purpose: PhantomData<P>,
}

impl<P: ForPurpose> FromRequest<AppState> for Hook<P> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let signed = Signed::from_request(req, s).await?;
        let token = s
            .signer
            .verify(&webhook::query_token(&signed.uri), P::PURPOSE, signed.at)
            .map_err(|e| WebhookError::Forbidden(e.to_string()).into_response())?;
        Ok(Hook {
            params: signed.params,
            token,
            at: signed.at,
            purpose: PhantomData,
        })
    }
}
