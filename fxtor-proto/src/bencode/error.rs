use thiserror::Error;

/// Why bencoded input was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid bencode at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Offset of the offending byte in the input.
    pub offset: usize,
    /// What was wrong there.
    pub kind: DecodeErrorKind,
}

/// The kinds of [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeErrorKind {
    /// The input ended in the middle of a value.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte {0:#04x}")]
    UnexpectedByte(u8),
    /// An integer or string length that is not a valid number.
    #[error("malformed number")]
    MalformedNumber,
    /// An integer or length with a leading zero (strict mode).
    #[error("number with a leading zero")]
    LeadingZero,
    /// `i-0e` (strict mode).
    #[error("negative zero")]
    NegativeZero,
    /// An integer that does not fit in 64 bits.
    #[error("integer out of range")]
    IntegerOverflow,
    /// A string whose declared length runs past the end of the input.
    #[error("string of {declared} bytes but only {available} remain")]
    StringTooLong {
        /// The length the string declared.
        declared: u64,
        /// What was left of the input.
        available: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a string")]
    NonStringKey,
    /// A dictionary whose keys are not in ascending byte order (strict mode).
    #[error("dictionary keys out of order")]
    UnsortedKeys,
    /// A dictionary with the same key twice (strict mode).
    #[error("duplicate dictionary key")]
    DuplicateKey,
    /// Nesting deeper than [`Limits::max_depth`](super::Limits::max_depth).
    #[error("nesting deeper than {0} levels")]
    DepthExceeded(u32),
    /// More values than [`Limits::max_values`](super::Limits::max_values).
    #[error("more than {0} values")]
    TooManyValues(usize),
    /// An input of 4 GiB or more, which no decode accepts.
    #[error("input of 4 GiB or more")]
    InputTooLarge,
    /// Bytes left over after a complete value.
    #[error("trailing data after the value")]
    TrailingData,
}
