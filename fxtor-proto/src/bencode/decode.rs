use nom::bytes::complete::take_while1;
use nom::IResult;

use super::error::{DecodeError, DecodeErrorKind as E};
use super::value::{Dict, Kind, Value};

/// How strictly to read bencode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Only canonical bencode: dictionary keys sorted and unique, no leading zeros, no `-0`.
    /// For data we check byte for byte: peer messages, DHT packets, resume data.
    Strict,
    /// What real .torrent files need: unsorted or repeated keys and leading zeros are
    /// accepted (the first of repeated keys wins). Everything else is still refused.
    #[default]
    Lenient,
}

/// Bounds on what one decode may build, so hostile input cannot exhaust the stack or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries (clamped to [`Limits::DEPTH_CEILING`]).
    pub max_depth: u32,
    /// Most values (integers, strings, lists, dictionaries) in one decode.
    pub max_values: usize,
}

impl Limits {
    /// The hard ceiling on `max_depth`, whatever is asked: the decoder recurses once per level.
    pub const DEPTH_CEILING: u32 = 512;
}

impl Default for Limits {
    /// libtorrent's limits for .torrent files: 100 levels, 3,000,000 values.
    fn default() -> Self {
        Self {
            max_depth: 100,
            max_values: 3_000_000,
        }
    }
}

/// Decodes exactly one value that fills the whole input, with default [`Limits`].
pub fn decode(input: &[u8], mode: Mode) -> Result<Value<'_>, DecodeError> {
    decode_with(input, mode, Limits::default())
}

/// Decodes exactly one value that fills the whole input.
pub fn decode_with(input: &[u8], mode: Mode, limits: Limits) -> Result<Value<'_>, DecodeError> {
    let (value, used) = decode_prefix(input, mode, limits)?;
    if used != input.len() {
        return Err(DecodeError {
            offset: used,
            kind: E::TrailingData,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of `input` and says how many bytes it took. For
/// messages where a bencoded header is followed by raw data (ut_metadata).
pub fn decode_prefix(
    input: &[u8],
    mode: Mode,
    limits: Limits,
) -> Result<(Value<'_>, usize), DecodeError> {
    let mut decoder = Decoder {
        input,
        strict: mode == Mode::Strict,
        max_depth: limits.max_depth.min(Limits::DEPTH_CEILING),
        values_left: limits.max_values,
        max_values: limits.max_values,
    };
    let value = decoder.value(0, 0)?;
    let used = value.offset + value.raw.len();
    Ok((value, used))
}

struct Decoder<'a> {
    input: &'a [u8],
    strict: bool,
    max_depth: u32,
    values_left: usize,
    max_values: usize,
}

fn digits(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b.is_ascii_digit())(i)
}

impl<'a> Decoder<'a> {
    fn err(&self, offset: usize, kind: E) -> DecodeError {
        DecodeError { offset, kind }
    }

    fn byte_at(&self, pos: usize) -> Result<u8, DecodeError> {
        self.input.get(pos).copied().ok_or(DecodeError {
            offset: pos,
            kind: E::UnexpectedEof,
        })
    }

    /// Parses an unsigned run of digits at `pos`; returns the number and the position after it.
    fn number(&self, pos: usize) -> Result<(u64, usize), DecodeError> {
        let rest = &self.input[pos..];
        let (_, run) = digits(rest).map_err(|_| match rest.first() {
            None => self.err(pos, E::UnexpectedEof),
            Some(_) => self.err(pos, E::MalformedNumber),
        })?;
        if self.strict && run.len() > 1 && run[0] == b'0' {
            return Err(self.err(pos, E::LeadingZero));
        }
        let mut n: u64 = 0;
        for &d in run {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or(self.err(pos, E::IntegerOverflow))?;
        }
        Ok((n, pos + run.len()))
    }

    fn expect(&self, pos: usize, byte: u8) -> Result<(), DecodeError> {
        match self.byte_at(pos)? {
            b if b == byte => Ok(()),
            b => Err(self.err(pos, E::UnexpectedByte(b))),
        }
    }

    fn value(&mut self, start: usize, depth: u32) -> Result<Value<'a>, DecodeError> {
        if self.values_left == 0 {
            return Err(self.err(start, E::TooManyValues(self.max_values)));
        }
        self.values_left -= 1;
        let (kind, end) = match self.byte_at(start)? {
            b'i' => self.int(start)?,
            b'0'..=b'9' => {
                let (bytes, end) = self.string(start)?;
                (Kind::Bytes(bytes), end)
            }
            b'l' => {
                let depth = self.enter(start, depth)?;
                let mut items = Vec::new();
                let mut pos = start + 1;
                while self.byte_at(pos)? != b'e' {
                    let item = self.value(pos, depth)?;
                    pos = item.offset + item.raw.len();
                    items.push(item);
                }
                (Kind::List(items), pos + 1)
            }
            b'd' => {
                let depth = self.enter(start, depth)?;
                let (dict, end) = self.dict(start, depth)?;
                (Kind::Dict(dict), end)
            }
            b => return Err(self.err(start, E::UnexpectedByte(b))),
        };
        Ok(Value {
            raw: &self.input[start..end],
            offset: start,
            kind,
        })
    }

    fn enter(&self, pos: usize, depth: u32) -> Result<u32, DecodeError> {
        if depth >= self.max_depth {
            return Err(self.err(pos, E::DepthExceeded(self.max_depth)));
        }
        Ok(depth + 1)
    }

    fn int(&self, start: usize) -> Result<(Kind<'a>, usize), DecodeError> {
        let negative = self.byte_at(start + 1)? == b'-';
        let digits_at = start + 1 + usize::from(negative);
        let (magnitude, end) = self.number(digits_at)?;
        self.expect(end, b'e')?;
        if negative && magnitude == 0 && self.strict {
            return Err(self.err(start, E::NegativeZero));
        }
        let value = if negative {
            // i64::MIN's magnitude is one more than i64::MAX.
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
        .ok_or(self.err(digits_at, E::IntegerOverflow))?;
        Ok((Kind::Int(value), end + 1))
    }

    fn string(&self, start: usize) -> Result<(&'a [u8], usize), DecodeError> {
        let (len, colon) = self.number(start)?;
        self.expect(colon, b':')?;
        let body = colon + 1;
        let available = self.input.len() - body;
        if len > available as u64 {
            return Err(self.err(
                start,
                E::StringTooLong {
                    declared: len,
                    available,
                },
            ));
        }
        let end = body + len as usize;
        Ok((&self.input[body..end], end))
    }

    fn dict(&mut self, start: usize, depth: u32) -> Result<(Dict<'a>, usize), DecodeError> {
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        let mut pos = start + 1;
        loop {
            let b = self.byte_at(pos)?;
            if b == b'e' {
                return Ok((Dict { entries }, pos + 1));
            }
            if !b.is_ascii_digit() {
                return Err(self.err(pos, E::NonStringKey));
            }
            let (key, after_key) = self.string(pos)?;
            if self.strict {
                if let Some((prev, _)) = entries.last() {
                    match (*prev).cmp(key) {
                        std::cmp::Ordering::Less => {}
                        std::cmp::Ordering::Equal => return Err(self.err(pos, E::DuplicateKey)),
                        std::cmp::Ordering::Greater => return Err(self.err(pos, E::UnsortedKeys)),
                    }
                }
            }
            let value = self.value(after_key, depth)?;
            pos = value.offset + value.raw.len();
            entries.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8], mode: Mode) -> DecodeError {
        decode(input, mode).expect_err("must be refused")
    }

    #[test]
    fn decodes_every_type() {
        let v = decode(b"d1:ai-3e1:bl0:4:spamee", Mode::Strict).unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d.get_int("a"), Some(-3));
        let list = d.get_list("b").unwrap();
        assert_eq!(list[0].as_bytes(), Some(&b""[..]));
        assert_eq!(list[1].as_str(), Some("spam"));
        assert_eq!(list[1].raw(), b"4:spam");
        assert_eq!(list[1].offset(), 14);
    }

    #[test]
    fn integer_edges() {
        assert_eq!(
            decode(b"i9223372036854775807e", Mode::Strict)
                .unwrap()
                .as_int(),
            Some(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e", Mode::Strict)
                .unwrap()
                .as_int(),
            Some(i64::MIN)
        );
        assert_eq!(
            err(b"i9223372036854775808e", Mode::Lenient).kind,
            E::IntegerOverflow
        );
        assert_eq!(
            err(b"i99999999999999999999999e", Mode::Lenient).kind,
            E::IntegerOverflow
        );
        assert_eq!(err(b"ie", Mode::Lenient).kind, E::MalformedNumber);
        assert_eq!(err(b"i-e", Mode::Lenient).kind, E::MalformedNumber);
        assert_eq!(err(b"i1", Mode::Lenient).kind, E::UnexpectedEof);
    }

    #[test]
    fn strict_refuses_what_lenient_accepts() {
        for (input, kind) in [
            (&b"i03e"[..], E::LeadingZero),
            (b"i-0e", E::NegativeZero),
            (b"03:abc", E::LeadingZero),
            (b"d1:bi1e1:ai2ee", E::UnsortedKeys),
            (b"d1:ai1e1:ai2ee", E::DuplicateKey),
        ] {
            assert_eq!(
                err(input, Mode::Strict).kind,
                kind,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert!(decode(input, Mode::Lenient).is_ok());
        }
        // First of repeated keys wins.
        let v = decode(b"d1:ai1e1:ai2ee", Mode::Lenient).unwrap();
        assert_eq!(v.as_dict().unwrap().get_int("a"), Some(1));
    }

    #[test]
    fn a_four_gib_length_prefix_is_refused_without_allocating() {
        let e = err(b"4294967296:abc", Mode::Lenient);
        assert_eq!(
            e.kind,
            E::StringTooLong {
                declared: 4_294_967_296,
                available: 3
            }
        );
        assert_eq!(e.offset, 0);
        assert_eq!(
            err(b"99999999999999999999999:x", Mode::Lenient).kind,
            E::IntegerOverflow
        );
    }

    #[test]
    fn a_thousand_deep_list_is_refused() {
        let mut input = vec![b'l'; 1000];
        input.extend(std::iter::repeat_n(b'e', 1000));
        let e = err(&input, Mode::Lenient);
        assert_eq!(e.kind, E::DepthExceeded(100));
        assert_eq!(e.offset, 100);
        // Even a caller asking for more cannot exceed the ceiling.
        let mut deep = vec![b'l'; 100_000];
        deep.extend(std::iter::repeat_n(b'e', 100_000));
        let limits = Limits {
            max_depth: u32::MAX,
            max_values: usize::MAX,
        };
        let e = decode_with(&deep, Mode::Lenient, limits).unwrap_err();
        assert_eq!(e.kind, E::DepthExceeded(Limits::DEPTH_CEILING));
    }

    #[test]
    fn value_count_is_bounded() {
        let limits = Limits {
            max_depth: 10,
            max_values: 3,
        };
        assert!(decode_with(b"li1ei2ee", Mode::Strict, limits).is_ok());
        let e = decode_with(b"li1ei2ei3ee", Mode::Strict, limits).unwrap_err();
        assert_eq!(e.kind, E::TooManyValues(3));
    }

    #[test]
    fn errors_say_where() {
        let e = err(b"d3:fooi1e3:barxe", Mode::Lenient);
        assert_eq!((e.offset, e.kind.clone()), (14, E::UnexpectedByte(b'x')));
        assert_eq!(
            e.to_string(),
            "invalid bencode at byte 14: unexpected byte 0x78"
        );
        assert_eq!(
            err(b"i1ei2e", Mode::Lenient),
            DecodeError {
                offset: 3,
                kind: E::TrailingData
            }
        );
        assert_eq!(err(b"di1ei2ee", Mode::Lenient).kind, E::NonStringKey);
        assert_eq!(err(b"", Mode::Lenient).kind, E::UnexpectedEof);
        assert_eq!(
            err(b"l", Mode::Lenient),
            DecodeError {
                offset: 1,
                kind: E::UnexpectedEof
            }
        );
    }

    #[test]
    fn prefix_reports_length() {
        let (v, used) = decode_prefix(
            b"d8:msg_typei1ee<raw piece>",
            Mode::Strict,
            Limits::default(),
        )
        .unwrap();
        assert_eq!(used, 15);
        assert_eq!(v.as_dict().unwrap().get_int("msg_type"), Some(1));
    }
}
