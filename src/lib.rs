//! callproof turns a phone call into proof: a customer hears a requested account
//! change, consents by keypad or voice, and the call is kept as evidence.
//!
//! Map (see ARCHITECTURE.md for the invariants):
//! - [`config`], [`auth`]: settings and credentials;
//! - [`domain`]: small types that cannot hold a bad value;
//! - [`twiml`], [`flow`]: the IVR dialogue, pure code;
//! - [`provider`]: the telephony provider's wire format and signatures;
//! - [`store`], [`confirmations`]: write-once facts in an object store;
//! - [`jobs`], [`ingest`], [`callbacks`], [`sweeper`]: durable work: recordings, outcome callbacks, repair;
//! - [`netguard`]: where callproof may connect on someone else's say-so;
//! - [`http`], [`server`]: the webhook and API server;
//! - [`simulate`]: a telephony provider for trying and testing callproof.

pub mod audio;
pub mod auth;
pub mod callbacks;
pub mod cli;
pub mod config;
pub mod confirmations;
pub mod credentials;
pub mod domain;
pub mod evidence;
pub mod flow;
pub mod http;
pub mod identity;
pub mod index;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod netguard;
pub mod provider;
pub mod record;
pub mod server;
pub mod simulate;
pub mod store;
pub mod sweeper;
pub mod twiml;
