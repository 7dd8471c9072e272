//! fxtor on tokio.
