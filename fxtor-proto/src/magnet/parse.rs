//! Reading a magnet URI.
//!
//! The query is split on `&`, each parameter on its first `=`. Keys are matched
//! case-sensitively, as libtorrent does, after dropping a numeric suffix (`tr.1` is `tr`).
//! Unknown keys, and `xt` values in other namespaces (`urn:sha1:`, `urn:ed2k:`), are ignored.

use std::collections::HashSet;
use std::hash::Hash;

use data_encoding::{BASE32_NOPAD_NOCASE, HEXLOWER_PERMISSIVE};

use super::error::excerpt;
use super::select::parse_select_only;
use super::{escape, FileRange, MagnetError, MagnetErrorKind, MagnetLink, PeerAddress};
use crate::{InfoHashV1, InfoHashV2, InfoHashes};

/// The multihash function code of sha2-256.
const MULTIHASH_SHA2_256: u64 = 0x12;
/// The longest unsigned varint a multihash header uses (63 bits of payload).
const MAX_VARINT_BYTES: usize = 9;

/// What the parameters say, before the info-hashes are known to be present.
#[derive(Default)]
struct Fields {
    v1: Option<InfoHashV1>,
    v2: Option<InfoHashV2>,
    display_name: Option<String>,
    exact_length: Option<u64>,
    trackers: Vec<String>,
    web_seeds: Vec<String>,
    peers: Vec<PeerAddress>,
    select_only: Vec<FileRange>,
}

pub(super) fn parse(uri: &str) -> Result<MagnetLink, MagnetError> {
    let leading_space = uri.len() - uri.trim_start().len();
    let trimmed = uri.trim();
    let query = strip_prefix_ignore_case(trimmed, "magnet:")
        .and_then(|rest| rest.strip_prefix('?'))
        .ok_or(MagnetError {
            offset: leading_space,
            kind: MagnetErrorKind::NotMagnet,
        })?;

    let mut fields = Fields::default();
    let mut offset = leading_space + (trimmed.len() - query.len());
    for param in query.split('&') {
        let param_offset = offset;
        offset += param.len() + 1;
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let value_offset = param_offset + key.len() + 1;
        fields.read(key, value).map_err(|kind| MagnetError {
            offset: value_offset,
            kind,
        })?;
    }

    let info_hashes = InfoHashes::from_parts(fields.v1, fields.v2).ok_or(MagnetError {
        offset: leading_space + trimmed.len(),
        kind: MagnetErrorKind::MissingInfoHash,
    })?;
    dedup_keeping_first(&mut fields.trackers);
    dedup_keeping_first(&mut fields.web_seeds);
    dedup_keeping_first(&mut fields.peers);
    Ok(MagnetLink {
        info_hashes,
        display_name: fields.display_name,
        exact_length: fields.exact_length,
        trackers: fields.trackers,
        web_seeds: fields.web_seeds,
        peers: fields.peers,
        select_only: fields.select_only,
    })
}

impl Fields {
    fn read(&mut self, key: &str, value: &str) -> Result<(), MagnetErrorKind> {
        match base_key(key) {
            "xt" => self.read_exact_topic(&escape::decode_text(value))?,
            "dn" => {
                let name = escape::decode_text(value);
                // The last name wins, as in libtorrent.
                if !name.is_empty() {
                    self.display_name = Some(name);
                }
            }
            "xl" => {
                let length = escape::decode_text(value);
                if !length.is_empty() {
                    self.exact_length = Some(parse_decimal(&length).ok_or_else(|| {
                        MagnetErrorKind::BadExactLength {
                            value: excerpt(&length),
                        }
                    })?);
                }
            }
            "tr" => push_non_empty(&mut self.trackers, escape::decode_url(value)),
            "ws" => push_non_empty(&mut self.web_seeds, escape::decode_url(value)),
            "x.pe" => {
                let peer = escape::decode_text(value);
                if !peer.is_empty() {
                    let parsed = peer.parse().map_err(|reason| MagnetErrorKind::BadPeer {
                        value: excerpt(&peer),
                        reason,
                    })?;
                    self.peers.push(parsed);
                }
            }
            "so" => {
                let selection = escape::decode_text(value);
                parse_select_only(&selection, &mut self.select_only).map_err(|reason| {
                    MagnetErrorKind::BadSelectOnly {
                        value: excerpt(&selection),
                        reason,
                    }
                })?;
            }
            _ => {}
        }
        Ok(())
    }

    fn read_exact_topic(&mut self, topic: &str) -> Result<(), MagnetErrorKind> {
        if let Some(hash) = strip_prefix_ignore_case(topic, "urn:btih:") {
            let v1 = parse_btih(hash).ok_or_else(|| MagnetErrorKind::BadBtih {
                value: excerpt(hash),
            })?;
            match self.v1 {
                Some(seen) if seen != v1 => return Err(MagnetErrorKind::ConflictingBtih),
                _ => self.v1 = Some(v1),
            }
        } else if let Some(hash) = strip_prefix_ignore_case(topic, "urn:btmh:") {
            let v2 = parse_btmh(hash)?;
            match self.v2 {
                Some(seen) if seen != v2 => return Err(MagnetErrorKind::ConflictingBtmh),
                _ => self.v2 = Some(v2),
            }
        }
        Ok(())
    }
}

/// A key without its numeric suffix: `tr.1` is `tr`, `x.pe.2` is `x.pe`, `x.pe` stays.
fn base_key(key: &str) -> &str {
    match key.rsplit_once('.') {
        Some((base, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => key,
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// 40 hex digits, or 32 base32 characters (RFC 4648, either case).
fn parse_btih(hash: &str) -> Option<InfoHashV1> {
    match hash.len() {
        40 => InfoHashV1::from_hex(hash),
        32 => {
            let bytes = BASE32_NOPAD_NOCASE.decode(hash.as_bytes()).ok()?;
            InfoHashV1::from_slice(&bytes)
        }
        _ => None,
    }
}

/// A hex multihash: varint function code, varint digest length, digest.
fn parse_btmh(hash: &str) -> Result<InfoHashV2, MagnetErrorKind> {
    let bad = || MagnetErrorKind::BadBtmh {
        value: excerpt(hash),
    };
    let bytes = HEXLOWER_PERMISSIVE
        .decode(hash.as_bytes())
        .map_err(|_| bad())?;
    let (code, rest) = read_varint(&bytes).ok_or_else(bad)?;
    let (len, digest) = read_varint(rest).ok_or_else(bad)?;
    if code != MULTIHASH_SHA2_256 || len != InfoHashV2::LEN as u64 {
        return Err(MagnetErrorKind::UnsupportedMultihash { code, len });
    }
    InfoHashV2::from_slice(digest).ok_or_else(bad)
}

/// An unsigned LEB128 varint, as multihash writes its header; `None` when it does not end
/// within [`MAX_VARINT_BYTES`].
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(MAX_VARINT_BYTES) {
        // At most 9 groups of 7 bits: the shift stays below 64.
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

/// Plain decimal digits (no sign, no spaces) that fit in a `u64`.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn push_non_empty(list: &mut Vec<String>, value: String) {
    if !value.is_empty() {
        list.push(value);
    }
}

/// Drops repeated entries, keeping the first of each in place. Linear time, so a link with
/// many thousands of trackers costs no more than reading it.
fn dedup_keeping_first<T: Hash + Eq + Clone>(list: &mut Vec<T>) {
    let mut seen = HashSet::with_capacity(list.len());
    list.retain(|item| seen.insert(item.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_numeric_key_suffixes_only() {
        assert_eq!(base_key("tr.1"), "tr");
        assert_eq!(base_key("x.pe"), "x.pe");
        assert_eq!(base_key("x.pe.12"), "x.pe");
        assert_eq!(base_key("tr."), "tr.");
        assert_eq!(base_key("tr.a"), "tr.a");
    }

    #[test]
    fn reads_varints() {
        assert_eq!(read_varint(&[0x12, 0x20]), Some((0x12, &[0x20][..])));
        assert_eq!(read_varint(&[0xb2, 0x40, 1]), Some((0x2032, &[1][..])));
        assert_eq!(read_varint(&[0x80]), None);
        assert_eq!(read_varint(&[0xff; 9]), None);
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Some((u64::MAX >> 1, &[][..]))
        );
    }

    #[test]
    fn dedups_in_order() {
        let mut list = vec![3, 1, 3, 2, 1];
        dedup_keeping_first(&mut list);
        assert_eq!(list, [3, 1, 2]);
    }
}
