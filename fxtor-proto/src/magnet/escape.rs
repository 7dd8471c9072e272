//! Percent-encoding of magnet parameter values.
//!
//! Reading follows libtorrent and `application/x-www-form-urlencoded`: `%XX` is a byte and `+`
//! is a space. A `%` that is not followed by two hex digits is kept as it is, as browsers do,
//! rather than refusing the whole link. Writing escapes everything outside a small safe set, so
//! that `&`, `=`, `+`, `%` and `#` in a value never change how the link is split.

use std::fmt;

/// Decodes a value's escapes into bytes.
pub(super) fn decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let high = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let low = bytes.get(i + 2).and_then(|&b| hex_value(b));
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high << 4 | low);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Decodes a value meant as text (a display name, a host name); bytes that are not UTF-8
/// become U+FFFD.
pub(super) fn decode_text(value: &str) -> String {
    match String::from_utf8(decode(value)) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

/// Decodes a value meant as a URL (a tracker, a web seed). Bytes that are not UTF-8 are
/// escaped again as `%XX`, which in a URL means the same byte, so nothing is lost.
pub(super) fn decode_url(value: &str) -> String {
    match String::from_utf8(decode(value)) {
        Ok(url) => url,
        Err(err) => {
            let mut url = String::with_capacity(err.as_bytes().len() * 3);
            for chunk in err.as_bytes().utf8_chunks() {
                url.push_str(chunk.valid());
                for &byte in chunk.invalid() {
                    push_escaped(&mut url, byte);
                }
            }
            url
        }
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn escape_pair(byte: u8) -> [char; 3] {
    // Both nibbles are below 16, so the indexing cannot go out of bounds.
    [
        '%',
        char::from(HEX_UPPER[usize::from(byte >> 4)]),
        char::from(HEX_UPPER[usize::from(byte & 0x0f)]),
    ]
}

fn push_escaped(out: &mut String, byte: u8) {
    out.extend(escape_pair(byte));
}

/// Which characters a value may keep unescaped.
#[derive(Clone, Copy)]
pub(super) enum Plain {
    /// RFC 3986 unreserved characters plus `:`, `/` and `@`, which are allowed in a query
    /// and keep tracker URLs readable.
    Value,
    /// As [`Plain::Value`], plus the brackets of `[ipv6]:port` (libtorrent reads `x.pe`
    /// without unescaping it).
    Peer,
}

impl Plain {
    fn keeps(self, byte: u8) -> bool {
        let common = byte.is_ascii_alphanumeric() || b"-._~:/@".contains(&byte);
        match self {
            Plain::Value => common,
            Plain::Peer => common || byte == b'[' || byte == b']',
        }
    }
}

/// Displays `text` percent-encoded.
pub(super) struct Escaped<'a> {
    pub(super) text: &'a str,
    pub(super) plain: Plain,
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.text.as_bytes() {
            if self.plain.keeps(byte) {
                fmt::Write::write_char(f, char::from(byte))?;
            } else {
                for c in escape_pair(byte) {
                    fmt::Write::write_char(f, c)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        Escaped {
            text,
            plain: Plain::Value,
        }
        .to_string()
    }

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(decode("a%20b+c%2Bd%2b"), b"a b c+d+");
        assert_eq!(decode_text("%C3%A9t%C3%A9"), "été");
    }

    #[test]
    fn keeps_a_stray_percent() {
        assert_eq!(decode("100%"), b"100%");
        assert_eq!(decode("%zz%4"), b"%zz%4");
        assert_eq!(decode("%%41"), b"%A");
    }

    #[test]
    fn url_keeps_non_utf8_bytes_escaped() {
        assert_eq!(decode_url("http://t/a?k=%FF%41"), "http://t/a?k=%FFA");
        assert_eq!(decode_text("%FF"), "\u{fffd}");
    }

    #[test]
    fn escapes_what_would_split_the_link() {
        assert_eq!(
            escaped("udp://t.example:80/a?b=c&d+e%f#g h"),
            "udp://t.example:80/a%3Fb%3Dc%26d%2Be%25f%23g%20h"
        );
        assert_eq!(escaped("é"), "%C3%A9");
        let peer = Escaped {
            text: "[::1]:6881",
            plain: Plain::Peer,
        };
        assert_eq!(peer.to_string(), "[::1]:6881");
    }
}
