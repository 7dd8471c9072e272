use nom::IResult;

use super::error::{DecodeError, DecodeErrorKind as E};
use super::value::{Document, Node, Shape};

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
    /// The hard ceiling on `max_depth`, whatever is asked.
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

/// Decodes exactly one value that fills the whole input, with default [`Limits`]: the
/// [`Document`] holding it.
pub fn decode(input: &[u8], mode: Mode) -> Result<Document<'_>, DecodeError> {
    decode_with(input, mode, Limits::default())
}

/// Decodes exactly one value that fills the whole input.
pub fn decode_with(input: &[u8], mode: Mode, limits: Limits) -> Result<Document<'_>, DecodeError> {
    let (document, used) = decode_prefix(input, mode, limits)?;
    if used != input.len() {
        return Err(DecodeError {
            offset: used,
            kind: E::TrailingData,
        });
    }
    Ok(document)
}

/// Decodes one value from the start of `input` and says how many bytes it took. For
/// messages where a bencoded header is followed by raw data (ut_metadata).
pub fn decode_prefix(
    input: &[u8],
    mode: Mode,
    limits: Limits,
) -> Result<(Document<'_>, usize), DecodeError> {
    if u32::try_from(input.len()).is_err() {
        return Err(DecodeError {
            offset: 0,
            kind: E::InputTooLarge,
        });
    }
    // A .torrent's file list takes about one node per 6 to 8 bytes; reserving for that
    // saves growing the vector in steps. Capped by what the limits allow (a key per value at
    // most) and at 2^20, so that a large input of few values (one long string) does not
    // reserve much it never uses.
    let expected_nodes = (input.len() / 6)
        .min(limits.max_values.saturating_mul(2))
        .min(1 << 20);
    let mut decoder = Decoder {
        input,
        strict: mode == Mode::Strict,
        max_depth: limits.max_depth.min(Limits::DEPTH_CEILING),
        values_left: limits.max_values,
        max_values: limits.max_values,
        nodes: Vec::with_capacity(expected_nodes),
        outer: Vec::new(),
    };
    let root = decoder.run()?;
    let used = root.end as usize;
    let document = Document {
        input,
        root,
        nodes: decoder.nodes,
    };
    Ok((document, used))
}

/// Reads a document into nodes, without recursion: the containers around the one being read
/// wait on a stack.
struct Decoder<'a> {
    /// The input, shorter than 4 GiB so that every offset fits in a `u32`.
    input: &'a [u8],
    strict: bool,
    max_depth: u32,
    values_left: usize,
    max_values: usize,
    /// Every node but the root's, in input order.
    nodes: Vec<Node>,
    /// The lists and dictionaries around the one being read, outermost first.
    outer: Vec<Open>,
}

/// A list or dictionary whose end has not been read yet.
struct Open {
    /// Where its node waits in `nodes` to be completed; `None` for the root, which is kept
    /// apart.
    slot: Option<usize>,
    is_dict: bool,
    /// Whether everything read so far is canonical.
    canonical: bool,
    /// The span of the last key's bytes, for checking the order of keys.
    last_key: Option<(u32, u32)>,
}

/// A value just read: a whole string or integer, or a list or dictionary just opened.
enum Item {
    Scalar(Node),
    Opened(Open),
}

/// A run of one or more decimal digits.
fn digits(i: &[u8]) -> IResult<&[u8], &[u8]> {
    nom::character::complete::digit1(i)
}

/// An unsigned decimal number as read by [`Decoder::number`].
struct Number {
    value: u64,
    /// Offset just past the last digit.
    end: usize,
    /// Whether it had a leading zero (refused in strict mode).
    leading_zero: bool,
}

impl<'a> Decoder<'a> {
    fn err(&self, offset: usize, kind: E) -> DecodeError {
        DecodeError { offset, kind }
    }

    fn byte_at(&self, pos: usize) -> Result<u8, DecodeError> {
        match self.input.get(pos) {
            Some(&b) => Ok(b),
            None => Err(self.err(pos, E::UnexpectedEof)),
        }
    }

    /// Reads the document's value: returns the root's node, leaving the others in `nodes`.
    fn run(&mut self) -> Result<Node, DecodeError> {
        match self.value(0, 0)? {
            Item::Scalar(root) => Ok(root),
            Item::Opened(root) => self.read_containers(root, 1),
        }
    }

    /// Reads on from `pos`, just inside the root list or dictionary `root`, until it closes;
    /// returns the root's node.
    fn read_containers(&mut self, root: Open, mut pos: usize) -> Result<Node, DecodeError> {
        // The innermost open container; those around it wait in `outer`.
        let mut current = root;
        loop {
            if self.byte_at(pos)? == b'e' {
                pos += 1;
                let node = self.close(&current, pos);
                let Some(parent) = self.outer.pop() else {
                    return Ok(node);
                };
                current = parent;
                current.canonical &= node.canonical();
                continue;
            }
            // An item follows: in a dictionary, its key first.
            if current.is_dict {
                pos = self.key(&mut current, pos)?;
            }
            // Containers are open around it: `current` and those in `outer`.
            let depth = self.outer.len() + 1;
            match self.value(pos, depth)? {
                Item::Scalar(node) => {
                    current.canonical &= node.canonical();
                    pos = node.end as usize;
                    self.nodes.push(node);
                }
                Item::Opened(open) => {
                    self.outer.push(std::mem::replace(&mut current, open));
                    pos += 1;
                }
            }
        }
    }

    /// Reads the value at `start`, inside `depth` open containers: the node of a string or
    /// integer, or a list or dictionary opened (its node a placeholder in `nodes`, unless it
    /// is the root).
    #[inline(always)]
    fn value(&mut self, start: usize, depth: usize) -> Result<Item, DecodeError> {
        if self.values_left == 0 {
            return Err(self.err(start, E::TooManyValues(self.max_values)));
        }
        self.values_left -= 1;
        match self.byte_at(start)? {
            b'i' => self.int(start).map(Item::Scalar),
            b'0'..=b'9' => self.string(start).map(|(node, _)| Item::Scalar(node)),
            b @ (b'l' | b'd') => {
                if depth >= self.max_depth as usize {
                    return Err(self.err(start, E::DepthExceeded(self.max_depth)));
                }
                let slot = (depth > 0).then(|| {
                    // Completed when the container closes.
                    self.nodes.push(Node {
                        end: 0,
                        shape: Shape::Int { canonical: true },
                    });
                    self.nodes.len() - 1
                });
                Ok(Item::Opened(Open {
                    slot,
                    is_dict: b == b'd',
                    canonical: true,
                    last_key: None,
                }))
            }
            b => Err(self.err(start, E::UnexpectedByte(b))),
        }
    }

    /// Completes the node of `open`, which ends just before `end`; returns it.
    fn close(&mut self, open: &Open, end: usize) -> Node {
        let descendants = match open.slot {
            Some(slot) => self.nodes.len() - slot - 1,
            None => self.nodes.len(),
        };
        // Fewer nodes than bytes of input, so fewer than 2^32.
        let descendants = descendants as u32;
        let canonical = open.canonical;
        let shape = if open.is_dict {
            Shape::Dict {
                descendants,
                canonical,
            }
        } else {
            Shape::List {
                descendants,
                canonical,
            }
        };
        // Offsets fit in u32: the input is shorter than 4 GiB.
        let node = Node {
            end: end as u32,
            shape,
        };
        if let Some(placeholder) = open.slot.and_then(|slot| self.nodes.get_mut(slot)) {
            *placeholder = node;
        }
        node
    }

    /// Reads the key of an entry of `dict` at `pos`, checking its order; returns where its
    /// value starts.
    fn key(&mut self, dict: &mut Open, pos: usize) -> Result<usize, DecodeError> {
        if !self.input.get(pos).is_some_and(u8::is_ascii_digit) {
            return Err(self.err(pos, E::NonStringKey));
        }
        let (key, body) = self.string(pos)?;
        if let Some(kind) = key_order(self.input, dict.last_key, (body, key.end)) {
            if self.strict {
                return Err(self.err(pos, kind));
            }
            dict.canonical = false;
        }
        dict.canonical &= key.canonical();
        dict.last_key = Some((body, key.end));
        self.nodes.push(key);
        Ok(key.end as usize)
    }

    /// Parses an unsigned run of digits at `pos`.
    fn number(&self, pos: usize) -> Result<Number, DecodeError> {
        let rest = self.input.get(pos..).unwrap_or_default();
        let (_, run) = digits(rest).map_err(|_| match rest.first() {
            None => self.err(pos, E::UnexpectedEof),
            Some(_) => self.err(pos, E::MalformedNumber),
        })?;
        let leading_zero = run.len() > 1 && run.first() == Some(&b'0');
        if self.strict && leading_zero {
            return Err(self.err(pos, E::LeadingZero));
        }
        let mut value: u64 = 0;
        if run.len() <= 19 {
            // Nineteen digits always fit in a u64.
            for &d in run {
                value = value * 10 + u64::from(d - b'0');
            }
        } else {
            for &d in run {
                value = value
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                    .ok_or_else(|| self.err(pos, E::IntegerOverflow))?;
            }
        }
        Ok(Number {
            value,
            end: pos + run.len(),
            leading_zero,
        })
    }

    fn expect(&self, pos: usize, byte: u8) -> Result<(), DecodeError> {
        match self.byte_at(pos)? {
            b if b == byte => Ok(()),
            b => Err(self.err(pos, E::UnexpectedByte(b))),
        }
    }

    fn int(&self, start: usize) -> Result<Node, DecodeError> {
        let negative = self.byte_at(start + 1)? == b'-';
        let digits_at = start + 1 + usize::from(negative);
        let number = self.number(digits_at)?;
        self.expect(number.end, b'e')?;
        let negative_zero = negative && number.value == 0;
        if negative_zero && self.strict {
            return Err(self.err(start, E::NegativeZero));
        }
        let in_range = if negative {
            // i64::MIN's magnitude is one more than i64::MAX.
            number.value <= i64::MIN.unsigned_abs()
        } else {
            i64::try_from(number.value).is_ok()
        };
        if !in_range {
            return Err(self.err(digits_at, E::IntegerOverflow));
        }
        // Offsets fit in u32: the input is shorter than 4 GiB.
        Ok(Node {
            end: (number.end + 1) as u32,
            shape: Shape::Int {
                canonical: !number.leading_zero && !negative_zero,
            },
        })
    }

    /// Reads a byte string: its node and where its bytes start.
    fn string(&self, start: usize) -> Result<(Node, u32), DecodeError> {
        let length = self.number(start)?;
        self.expect(length.end, b':')?;
        let body = length.end + 1;
        let available = self.input.len() - body;
        if length.value > available as u64 {
            return Err(self.err(
                start,
                E::StringTooLong {
                    declared: length.value,
                    available,
                },
            ));
        }
        // Offsets fit in u32: the input is shorter than 4 GiB.
        let body = body as u32;
        let node = Node {
            end: body + length.value as u32,
            shape: Shape::Bytes {
                body,
                canonical: !length.leading_zero,
            },
        };
        Ok((node, body))
    }
}

/// Whether a key (the span `this` of the input) may follow `prev` in canonical bencode: the
/// problem if not.
fn key_order(input: &[u8], prev: Option<(u32, u32)>, this: (u32, u32)) -> Option<E> {
    let (start, end) = prev?;
    let bytes = |start: u32, end: u32| input.get(start as usize..end as usize);
    match bytes(start, end)?.cmp(bytes(this.0, this.1)?) {
        std::cmp::Ordering::Less => None,
        std::cmp::Ordering::Equal => Some(E::DuplicateKey),
        std::cmp::Ordering::Greater => Some(E::UnsortedKeys),
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
        assert_eq!(list.len(), 2);
        assert_eq!(list.get(0).unwrap().as_bytes(), Some(&b""[..]));
        assert_eq!(list.get(1).unwrap().as_str(), Some("spam"));
        assert_eq!(list.get(1).unwrap().raw(), b"4:spam");
        assert_eq!(list.get(1).unwrap().offset(), 14);
        assert!(list.get(2).is_none());
        assert!(v.is_canonical());
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
