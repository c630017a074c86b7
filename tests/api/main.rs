//! Integration tests: the real server on a loopback port, driven over HTTP by
//! the simulator and by hand-signed webhooks, with its store in a temp dir.

mod audit;
mod browser;
mod bundle;
mod callbacks;
mod calls;
mod cli;
mod confirmations;
mod crash;
mod evidence;
mod faults;
mod guard;
mod helpers;
mod inbound;
mod index;
mod memory;
mod postgres_index;
mod purge;
mod records;
mod s3;
mod schema;
mod seals;
mod store_ops;
mod ui;
mod webhooks;
