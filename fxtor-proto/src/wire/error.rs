use thiserror::Error;

use super::MessageId;

/// Why bytes from a peer were refused as a handshake or a message.
///
/// After any of these the stream can no longer be trusted to be in step, so the connection
/// should be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The handshake does not start with `\x13BitTorrent protocol`: the peer speaks
    /// something else (an encrypted stream, another protocol).
    #[error("handshake: byte {offset} is {byte:#04x}, not part of \"\\x13BitTorrent protocol\"")]
    BadProtocolString {
        /// Where in the handshake the first wrong byte is.
        offset: usize,
        /// That byte.
        byte: u8,
    },
    /// A length prefix over the decoder's limit; nothing was allocated for it.
    #[error("message of {length} bytes is over the limit of {max} bytes")]
    MessageTooLong {
        /// The length the prefix announced.
        length: u32,
        /// The decoder's limit.
        max: u32,
    },
    /// A message of fixed size with another length.
    #[error("{message} message of {actual} bytes, must be {expected}")]
    WrongLength {
        /// Which message.
        message: MessageId,
        /// Its fixed length (message id and payload, without the length prefix).
        expected: u32,
        /// The length it came with.
        actual: u32,
    },
    /// A message shorter than its fixed fields.
    #[error("{message} message of {actual} bytes, must be at least {min}")]
    TooShort {
        /// Which message.
        message: MessageId,
        /// The length of its fixed fields (message id included).
        min: u32,
        /// The length it came with.
        actual: u32,
    },
    /// A message whose fields are the right size but do not make sense.
    #[error("{message} message: {problem}")]
    Malformed {
        /// Which message.
        message: MessageId,
        /// What is wrong with it.
        problem: &'static str,
    },
}
