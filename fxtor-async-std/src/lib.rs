//! fxtor on async-std and smol.
//!
//! The adapter is not written yet; it re-exports the core so the workspace's layout is in place.
pub use fxtor_proto as proto;
