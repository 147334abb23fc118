//! The OSS-trigger bridge (docs/oss-bridge.md): bucket notifications in, JD Cloud OSS-trigger events out.
//!
//! `classify` recognises the sender and its control messages, `records` reduces each sender's
//! record to one shape, `event` matches it against the triggers and writes the JD event.

pub mod auth;
pub mod classify;
pub mod deliver;
pub mod event;
pub mod queue;
pub mod records;
pub mod stats;
pub mod subscribe;
pub mod worker;
