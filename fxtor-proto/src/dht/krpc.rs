//! KRPC, the DHT's message format (BEP5): bencoded dictionaries in UDP datagrams.
//!
//! A message is a query (`y = q`), a response (`y = r`) or an error (`y = e`), and carries
//! the transaction id (`t`) its answer echoes. Beyond BEP5 this codec knows BEP32 (`nodes6`,
//! `want`), BEP42 (the `ip` field telling the requester its external address), BEP43 (the
//! `ro` flag of read-only nodes) and BEP51 (`sample_infohashes`).
//!
//! Decoding never panics and bounds everything: the datagram's length
//! ([`MAX_MESSAGE_LEN`]), bencode nesting and value counts, transaction ids and tokens. A
//! message that fails to decode says whether it was a query and, if it could be read, its
//! transaction id, so a query can be answered with error 203.
//!
//! ```
//! use fxtor_proto::dht::krpc::{Body, Message, Query, QueryKind, TransactionId, Want};
//! use fxtor_proto::dht::NodeId;
//!
//! let ping = Message {
//!     transaction: TransactionId::from_slice(b"aa").unwrap(),
//!     version: None,
//!     read_only: false,
//!     ip: None,
//!     body: Body::Query(Query { id: NodeId([b'a'; 20]), want: Want::default(), kind: QueryKind::Ping }),
//! };
//! let bytes = ping.to_vec();
//! assert_eq!(bytes, b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe");
//! assert_eq!(Message::decode(&bytes).unwrap(), ping);
//! ```

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bytes::Bytes;
use smallvec::SmallVec;
use thiserror::Error;

use super::node_id::NodeId;
use crate::bencode::{self, Dict, Limits, Mode, Value};

/// The longest datagram decoded; longer ones are refused before any parsing.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The longest transaction id accepted.
pub const MAX_TRANSACTION_LEN: usize = 32;
/// The longest `get_peers` token accepted.
pub const MAX_TOKEN_LEN: usize = 64;
/// The longest error message kept (longer ones are cut).
pub const MAX_ERROR_MESSAGE_LEN: usize = 256;

/// Error 201: a generic error.
pub const ERROR_GENERIC: i64 = 201;
/// Error 202: a server error.
pub const ERROR_SERVER: i64 = 202;
/// Error 203: a protocol error (malformed packet, invalid arguments, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// Error 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

const DECODE_LIMITS: Limits = Limits {
    max_depth: 8,
    max_values: 2048,
};

/// A transaction id: the bytes a query carries in `t` and its answer echoes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TransactionId(SmallVec<[u8; 8]>);

impl TransactionId {
    /// A transaction id from at most [`MAX_TRANSACTION_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        (bytes.len() <= MAX_TRANSACTION_LEN).then(|| Self(SmallVec::from_slice(bytes)))
    }

    /// The two-byte id of one of our own queries.
    pub fn from_u16(n: u16) -> Self {
        Self(SmallVec::from_slice(&n.to_be_bytes()))
    }

    /// The id as one of our own queries' ids, if it has their two-byte form.
    pub fn as_u16(&self) -> Option<u16> {
        <[u8; 2]>::try_from(self.0.as_slice())
            .ok()
            .map(u16::from_be_bytes)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TransactionId({})",
            data_encoding::HEXLOWER.encode(&self.0)
        )
    }
}

/// One KRPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `t`: the transaction id.
    pub transaction: TransactionId,
    /// `v`: the sender's client version, if it said (at most 16 bytes are kept).
    pub version: Option<Bytes>,
    /// `ro = 1` (BEP43): the sender is read-only and must not enter routing tables.
    pub read_only: bool,
    /// `ip` (BEP42): in a response, the requester's address as the responder sees it.
    pub ip: Option<SocketAddr>,
    /// What the message is.
    pub body: Body,
}

/// The three kinds of message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `y = q`.
    Query(Query),
    /// `y = r`.
    Response(Response),
    /// `y = e`.
    Error(ErrorMessage),
}

/// Which address families a requester wants nodes for (BEP32 `want`). Neither set means
/// the requester did not say: it gets its own family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// `n4`: IPv4 nodes in `nodes`.
    pub v4: bool,
    /// `n6`: IPv6 nodes in `nodes6`.
    pub v6: bool,
}

/// A query: the sender's id, its `want`, and the method with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// `id`: the querying node's id.
    pub id: NodeId,
    /// `want` (BEP32).
    pub want: Want,
    /// The method.
    pub kind: QueryKind,
}

/// A query's method and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// `ping`.
    Ping,
    /// `find_node`: the nodes closest to `target`.
    FindNode {
        /// `target`.
        target: NodeId,
    },
    /// `get_peers`: peers for `info_hash`, or the nodes closest to it, and a token.
    GetPeers {
        /// `info_hash`.
        info_hash: NodeId,
    },
    /// `announce_peer`: the sender is a peer for `info_hash`.
    AnnouncePeer {
        /// `info_hash`.
        info_hash: NodeId,
        /// `port`: where the peer listens (ignored when `implied_port` is set).
        port: u16,
        /// `implied_port = 1`: use the datagram's source port instead.
        implied_port: bool,
        /// `token`: from an earlier `get_peers` response.
        token: Bytes,
    },
    /// `sample_infohashes` (BEP51): a sample of the info-hashes the node stores.
    SampleInfohashes {
        /// `target`: for the `nodes` part of the answer.
        target: NodeId,
    },
    /// A method this codec does not know; answered with error 204.
    Unknown {
        /// `q`, at most 32 bytes of it.
        method: Bytes,
    },
}

impl QueryKind {
    /// The method's name, as sent in `q`.
    pub fn method(&self) -> &[u8] {
        match self {
            Self::Ping => b"ping",
            Self::FindNode { .. } => b"find_node",
            Self::GetPeers { .. } => b"get_peers",
            Self::AnnouncePeer { .. } => b"announce_peer",
            Self::SampleInfohashes { .. } => b"sample_infohashes",
            Self::Unknown { method } => method,
        }
    }
}

/// A node as `nodes` and `nodes6` list them: its id and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A response. KRPC responses do not name their method; the fields present say what they
/// answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// `id`: the responding node's id.
    pub id: NodeId,
    /// `nodes` (IPv4, 26 bytes each) then `nodes6` (IPv6, 38 bytes each).
    pub nodes: Vec<NodeInfo>,
    /// `values`: peers (compact, 6 or 18 bytes each; entries of other lengths are skipped).
    pub values: Vec<SocketAddr>,
    /// `token`, for a later `announce_peer`.
    pub token: Option<Bytes>,
    /// `samples` (BEP51): info-hashes the responder stores.
    pub samples: Option<Vec<NodeId>>,
    /// `interval` (BEP51): seconds before the sample changes.
    pub interval: Option<u32>,
    /// `num` (BEP51): how many info-hashes the responder stores.
    pub num: Option<u32>,
}

/// An error message: a code (201–204) and a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The code.
    pub code: i64,
    /// The text (lossily decoded, at most [`MAX_ERROR_MESSAGE_LEN`] bytes).
    pub message: String,
}

/// Why a datagram is not a valid KRPC message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid KRPC message{}: {kind}", if *.query { " (a query)" } else { "" })]
pub struct KrpcDecodeError {
    /// The message's transaction id, if it could be read.
    pub transaction: Option<TransactionId>,
    /// Whether the message said it is a query (`y = q`): it deserves error 203.
    pub query: bool,
    /// What was wrong.
    pub kind: KrpcErrorKind,
}

/// The kinds of [`KrpcDecodeError`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KrpcErrorKind {
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("{0} bytes, more than {MAX_MESSAGE_LEN}")]
    TooLong(usize),
    /// Not bencode.
    #[error(transparent)]
    Bencode(#[from] bencode::DecodeError),
    /// Not a dictionary at the top level.
    #[error("not a dictionary")]
    NotADictionary,
    /// A required key is missing.
    #[error("missing `{0}`")]
    Missing(&'static str),
    /// A key has a value of the wrong type.
    #[error("`{0}` has the wrong type")]
    WrongType(&'static str),
    /// A string has the wrong length.
    #[error("`{field}` has {len} bytes")]
    BadLength {
        /// The key.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// An integer out of its range.
    #[error("`{field}` is out of range: {value}")]
    OutOfRange {
        /// The key.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// `y` is not `q`, `r` or `e`.
    #[error("unknown message type")]
    UnknownType,
}

impl Message {
    /// Decodes one datagram.
    pub fn decode(data: &[u8]) -> Result<Self, KrpcDecodeError> {
        let plain = |kind| KrpcDecodeError {
            transaction: None,
            query: false,
            kind,
        };
        if data.len() > MAX_MESSAGE_LEN {
            return Err(plain(KrpcErrorKind::TooLong(data.len())));
        }
        let document = bencode::decode_with(data, Mode::Lenient, DECODE_LIMITS)
            .map_err(|e| plain(e.into()))?;
        let dict = document
            .as_dict()
            .ok_or(plain(KrpcErrorKind::NotADictionary))?;
        let transaction = dict
            .get_bytes("t")
            .and_then(TransactionId::from_slice)
            .ok_or(plain(KrpcErrorKind::Missing("t")))?;
        let query = dict.get_bytes("y") == Some(b"q");
        decode_fields(&dict).map_err(|kind| KrpcDecodeError {
            transaction: Some(transaction.clone()),
            query,
            kind,
        })
    }

    /// The canonical encoding.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode(&mut out);
        out
    }

    /// Appends the canonical encoding to `out`. Keys are written in byte order.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'd');
        match &self.body {
            Body::Query(query) => {
                key(out, "a");
                encode_query_args(query, out);
            }
            Body::Error(error) => {
                key(out, "e");
                out.push(b'l');
                bencode::write_int(out, error.code);
                bencode::write_bytes(out, error.message.as_bytes());
                out.push(b'e');
            }
            Body::Response(_) => {}
        }
        if let Some(ip) = self.ip {
            key(out, "ip");
            bencode::write_bytes(out, &compact_addr(ip));
        }
        match &self.body {
            Body::Query(query) => {
                key(out, "q");
                bencode::write_bytes(out, query.kind.method());
            }
            Body::Response(response) => {
                key(out, "r");
                encode_response(response, out);
            }
            Body::Error(_) => {}
        }
        if self.read_only {
            key(out, "ro");
            bencode::write_int(out, 1);
        }
        key(out, "t");
        bencode::write_bytes(out, self.transaction.as_bytes());
        if let Some(version) = &self.version {
            key(out, "v");
            bencode::write_bytes(out, version);
        }
        key(out, "y");
        bencode::write_bytes(
            out,
            match self.body {
                Body::Query(_) => b"q",
                Body::Response(_) => b"r",
                Body::Error(_) => b"e",
            },
        );
        out.push(b'e');
    }
}

fn key(out: &mut Vec<u8>, key: &str) {
    bencode::write_bytes(out, key.as_bytes());
}

fn encode_query_args(query: &Query, out: &mut Vec<u8>) {
    out.push(b'd');
    key(out, "id");
    bencode::write_bytes(out, &query.id.0);
    match &query.kind {
        QueryKind::Ping | QueryKind::Unknown { .. } => {}
        QueryKind::FindNode { target } | QueryKind::SampleInfohashes { target } => {
            key(out, "target");
            bencode::write_bytes(out, &target.0);
        }
        QueryKind::GetPeers { info_hash } => {
            key(out, "info_hash");
            bencode::write_bytes(out, &info_hash.0);
        }
        QueryKind::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
        } => {
            key(out, "implied_port");
            bencode::write_int(out, i64::from(*implied_port));
            key(out, "info_hash");
            bencode::write_bytes(out, &info_hash.0);
            key(out, "port");
            bencode::write_int(out, i64::from(*port));
            key(out, "token");
            bencode::write_bytes(out, token);
        }
    }
    if query.want.v4 || query.want.v6 {
        key(out, "want");
        out.push(b'l');
        if query.want.v4 {
            bencode::write_bytes(out, b"n4");
        }
        if query.want.v6 {
            bencode::write_bytes(out, b"n6");
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn encode_response(response: &Response, out: &mut Vec<u8>) {
    out.push(b'd');
    key(out, "id");
    bencode::write_bytes(out, &response.id.0);
    if let Some(interval) = response.interval {
        key(out, "interval");
        bencode::write_int(out, i64::from(interval));
    }
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for node in &response.nodes {
        let target = if node.addr.is_ipv4() {
            &mut v4
        } else {
            &mut v6
        };
        target.extend_from_slice(&node.id.0);
        target.extend_from_slice(&compact_addr(node.addr));
    }
    if !v4.is_empty() {
        key(out, "nodes");
        bencode::write_bytes(out, &v4);
    }
    if !v6.is_empty() {
        key(out, "nodes6");
        bencode::write_bytes(out, &v6);
    }
    if let Some(num) = response.num {
        key(out, "num");
        bencode::write_int(out, i64::from(num));
    }
    if let Some(samples) = &response.samples {
        key(out, "samples");
        let joined: Vec<u8> = samples.iter().flat_map(|s| s.0).collect();
        bencode::write_bytes(out, &joined);
    }
    if let Some(token) = &response.token {
        key(out, "token");
        bencode::write_bytes(out, token);
    }
    if !response.values.is_empty() {
        key(out, "values");
        out.push(b'l');
        for value in &response.values {
            bencode::write_bytes(out, &compact_addr(*value));
        }
        out.push(b'e');
    }
    out.push(b'e');
}

/// The compact form of an address: 4 or 16 bytes of IP, then the port, big-endian.
pub fn compact_addr(addr: SocketAddr) -> SmallVec<[u8; 18]> {
    let mut out = SmallVec::new();
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

/// Reads a compact address of 6 (IPv4) or 18 (IPv6) bytes.
pub fn parse_compact_addr(bytes: &[u8]) -> Option<SocketAddr> {
    match bytes.len() {
        6 => {
            let ip: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            let port = u16::from_be_bytes(bytes.get(4..6)?.try_into().ok()?);
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        18 => {
            let ip: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
            let port = u16::from_be_bytes(bytes.get(16..18)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

fn decode_fields(dict: &Dict<'_>) -> Result<Message, KrpcErrorKind> {
    let version = match dict.get("v") {
        None => None,
        Some(v) => v
            .as_bytes()
            .map(|b| Bytes::copy_from_slice(&b[..b.len().min(16)])),
    };
    let read_only = matches!(dict.get_int("ro"), Some(n) if n != 0);
    let ip = dict.get_bytes("ip").and_then(parse_compact_addr);
    let body = match dict.get_bytes("y") {
        Some(b"q") => Body::Query(decode_query(dict)?),
        Some(b"r") => Body::Response(decode_response(
            &dict
                .get_dict("r")
                .ok_or(missing_or_wrong(dict.get("r"), "r"))?,
        )?),
        Some(b"e") => Body::Error(decode_error(dict)?),
        Some(_) => return Err(KrpcErrorKind::UnknownType),
        None => return Err(missing_or_wrong(dict.get("y"), "y")),
    };
    Ok(Message {
        transaction: dict
            .get_bytes("t")
            .and_then(TransactionId::from_slice)
            .ok_or(KrpcErrorKind::Missing("t"))?,
        version,
        read_only,
        ip,
        body,
    })
}

fn missing_or_wrong(value: Option<Value<'_>>, field: &'static str) -> KrpcErrorKind {
    match value {
        None => KrpcErrorKind::Missing(field),
        Some(_) => KrpcErrorKind::WrongType(field),
    }
}

fn bytes_field<'a>(dict: &Dict<'a>, field: &'static str) -> Result<&'a [u8], KrpcErrorKind> {
    let value = dict.get(field);
    value
        .and_then(|v| v.as_bytes())
        .ok_or(missing_or_wrong(value, field))
}

fn id_field(dict: &Dict<'_>, field: &'static str) -> Result<NodeId, KrpcErrorKind> {
    let bytes = bytes_field(dict, field)?;
    NodeId::from_slice(bytes).ok_or(KrpcErrorKind::BadLength {
        field,
        len: bytes.len(),
    })
}

fn int_field(dict: &Dict<'_>, field: &'static str) -> Result<Option<i64>, KrpcErrorKind> {
    match dict.get(field) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or(KrpcErrorKind::WrongType(field)),
    }
}

fn u32_field(dict: &Dict<'_>, field: &'static str) -> Result<Option<u32>, KrpcErrorKind> {
    int_field(dict, field)?
        .map(|value| u32::try_from(value).map_err(|_| KrpcErrorKind::OutOfRange { field, value }))
        .transpose()
}

fn decode_query(dict: &Dict<'_>) -> Result<Query, KrpcErrorKind> {
    let method = bytes_field(dict, "q")?;
    let args = dict
        .get_dict("a")
        .ok_or(missing_or_wrong(dict.get("a"), "a"))?;
    let id = id_field(&args, "id")?;
    let mut want = Want::default();
    if let Some(list) = args.get("want") {
        let list = list.as_list().ok_or(KrpcErrorKind::WrongType("want"))?;
        for item in list.iter() {
            match item.as_bytes() {
                Some(b"n4") => want.v4 = true,
                Some(b"n6") => want.v6 = true,
                _ => {}
            }
        }
    }
    let kind = match method {
        b"ping" => QueryKind::Ping,
        b"find_node" => QueryKind::FindNode {
            target: id_field(&args, "target")?,
        },
        b"get_peers" => QueryKind::GetPeers {
            info_hash: id_field(&args, "info_hash")?,
        },
        b"announce_peer" => {
            let implied_port = matches!(int_field(&args, "implied_port")?, Some(n) if n != 0);
            let port = match int_field(&args, "port")? {
                Some(value) => u16::try_from(value).map_err(|_| KrpcErrorKind::OutOfRange {
                    field: "port",
                    value,
                })?,
                None if implied_port => 0,
                None => return Err(KrpcErrorKind::Missing("port")),
            };
            let token = bytes_field(&args, "token")?;
            if token.len() > MAX_TOKEN_LEN {
                return Err(KrpcErrorKind::BadLength {
                    field: "token",
                    len: token.len(),
                });
            }
            QueryKind::AnnouncePeer {
                info_hash: id_field(&args, "info_hash")?,
                port,
                implied_port,
                token: Bytes::copy_from_slice(token),
            }
        }
        b"sample_infohashes" => QueryKind::SampleInfohashes {
            target: id_field(&args, "target")?,
        },
        other => QueryKind::Unknown {
            method: Bytes::copy_from_slice(&other[..other.len().min(32)]),
        },
    };
    Ok(Query { id, want, kind })
}

fn decode_nodes(
    bytes: &[u8],
    entry: usize,
    field: &'static str,
    out: &mut Vec<NodeInfo>,
) -> Result<(), KrpcErrorKind> {
    if bytes.len() % entry != 0 {
        return Err(KrpcErrorKind::BadLength {
            field,
            len: bytes.len(),
        });
    }
    out.reserve(bytes.len() / entry);
    for chunk in bytes.chunks_exact(entry) {
        let (id, addr) = chunk.split_at(NodeId::LEN);
        if let (Some(id), Some(addr)) = (NodeId::from_slice(id), parse_compact_addr(addr)) {
            out.push(NodeInfo { id, addr });
        }
    }
    Ok(())
}

fn decode_response(r: &Dict<'_>) -> Result<Response, KrpcErrorKind> {
    let id = id_field(r, "id")?;
    let mut nodes = Vec::new();
    if let Some(v) = r.get("nodes") {
        let bytes = v.as_bytes().ok_or(KrpcErrorKind::WrongType("nodes"))?;
        decode_nodes(bytes, 26, "nodes", &mut nodes)?;
    }
    if let Some(v) = r.get("nodes6") {
        let bytes = v.as_bytes().ok_or(KrpcErrorKind::WrongType("nodes6"))?;
        decode_nodes(bytes, 38, "nodes6", &mut nodes)?;
    }
    let mut values = Vec::new();
    if let Some(v) = r.get("values") {
        let list = v.as_list().ok_or(KrpcErrorKind::WrongType("values"))?;
        values.reserve(list.len());
        values.extend(
            list.iter()
                .filter_map(|item| item.as_bytes().and_then(parse_compact_addr)),
        );
    }
    let token = match r.get("token") {
        None => None,
        Some(v) => {
            let bytes = v.as_bytes().ok_or(KrpcErrorKind::WrongType("token"))?;
            if bytes.len() > MAX_TOKEN_LEN {
                return Err(KrpcErrorKind::BadLength {
                    field: "token",
                    len: bytes.len(),
                });
            }
            Some(Bytes::copy_from_slice(bytes))
        }
    };
    let samples = match r.get("samples") {
        None => None,
        Some(v) => {
            let bytes = v.as_bytes().ok_or(KrpcErrorKind::WrongType("samples"))?;
            if bytes.len() % NodeId::LEN != 0 {
                return Err(KrpcErrorKind::BadLength {
                    field: "samples",
                    len: bytes.len(),
                });
            }
            Some(
                bytes
                    .chunks_exact(NodeId::LEN)
                    .filter_map(NodeId::from_slice)
                    .collect(),
            )
        }
    };
    Ok(Response {
        id,
        nodes,
        values,
        token,
        samples,
        interval: u32_field(r, "interval")?,
        num: u32_field(r, "num")?,
    })
}

fn decode_error(dict: &Dict<'_>) -> Result<ErrorMessage, KrpcErrorKind> {
    let list = dict
        .get_list("e")
        .ok_or(missing_or_wrong(dict.get("e"), "e"))?;
    let code = list
        .get(0)
        .and_then(|v| v.as_int())
        .ok_or(KrpcErrorKind::WrongType("e"))?;
    let message = list
        .get(1)
        .and_then(|v| v.as_bytes())
        .map(|b| {
            let mut text =
                String::from_utf8_lossy(&b[..b.len().min(MAX_ERROR_MESSAGE_LEN)]).into_owned();
            // Replacement characters may have made it longer: cut at a character boundary.
            let mut end = text.len().min(MAX_ERROR_MESSAGE_LEN);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text
        })
        .unwrap_or_default();
    Ok(ErrorMessage { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node_id() -> impl Strategy<Value = NodeId> {
        any::<[u8; 20]>().prop_map(NodeId)
    }

    fn addr_v4() -> impl Strategy<Value = SocketAddr> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
    }

    fn addr_v6() -> impl Strategy<Value = SocketAddr> {
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port)))
    }

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![addr_v4(), addr_v6()]
    }

    fn query_kind() -> impl Strategy<Value = QueryKind> {
        prop_oneof![
            Just(QueryKind::Ping),
            node_id().prop_map(|target| QueryKind::FindNode { target }),
            node_id().prop_map(|info_hash| QueryKind::GetPeers { info_hash }),
            (
                node_id(),
                any::<u16>(),
                any::<bool>(),
                prop::collection::vec(any::<u8>(), 0..=MAX_TOKEN_LEN)
            )
                .prop_map(|(info_hash, port, implied_port, token)| {
                    QueryKind::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token: token.into(),
                    }
                }),
            node_id().prop_map(|target| QueryKind::SampleInfohashes { target }),
            "[a-z_]{1,20}"
                .prop_filter("known methods", |m| ![
                    "ping",
                    "find_node",
                    "get_peers",
                    "announce_peer",
                    "sample_infohashes"
                ]
                .contains(&m.as_str()))
                .prop_map(|m| QueryKind::Unknown {
                    method: Bytes::from(m.into_bytes())
                }),
        ]
    }

    fn response() -> impl Strategy<Value = Response> {
        (
            node_id(),
            prop::collection::vec((node_id(), addr_v4()), 0..8),
            prop::collection::vec((node_id(), addr_v6()), 0..8),
            prop::collection::vec(addr(), 0..20),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..=MAX_TOKEN_LEN)),
            prop::option::of(prop::collection::vec(node_id(), 0..20)),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
        )
            .prop_map(
                |(id, n4, n6, values, token, samples, interval, num)| Response {
                    id,
                    nodes: n4
                        .into_iter()
                        .chain(n6)
                        .map(|(id, addr)| NodeInfo { id, addr })
                        .collect(),
                    values,
                    token: token.map(Bytes::from),
                    samples,
                    interval,
                    num,
                },
            )
    }

    fn message() -> impl Strategy<Value = Message> {
        let body = prop_oneof![
            (node_id(), any::<bool>(), any::<bool>(), query_kind()).prop_map(
                |(id, v4, v6, kind)| {
                    Body::Query(Query {
                        id,
                        want: Want { v4, v6 },
                        kind,
                    })
                }
            ),
            response().prop_map(Body::Response),
            (201i64..=204, "[ -~]{0,40}")
                .prop_map(|(code, message)| Body::Error(ErrorMessage { code, message })),
        ];
        (
            prop::collection::vec(any::<u8>(), 0..=MAX_TRANSACTION_LEN),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..=16)),
            any::<bool>(),
            prop::option::of(addr()),
            body,
        )
            .prop_map(|(t, version, read_only, ip, body)| Message {
                transaction: TransactionId::from_slice(&t).unwrap(),
                version: version.map(Bytes::from),
                read_only,
                ip,
                body,
            })
    }

    proptest! {
        #[test]
        fn round_trips(message in message()) {
            let bytes = message.to_vec();
            prop_assume!(bytes.len() <= MAX_MESSAGE_LEN);
            // Canonical: strict bencode accepts it.
            prop_assert!(bencode::decode(&bytes, Mode::Strict).is_ok());
            prop_assert_eq!(Message::decode(&bytes).unwrap(), message);
        }

        #[test]
        fn never_panics(data in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Message::decode(&data);
        }

        #[test]
        fn never_panics_on_mutated_messages(message in message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
            let mut bytes = message.to_vec();
            for (index, byte) in flips {
                let i = index.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = Message::decode(&bytes);
        }
    }

    #[test]
    fn bep5_examples_decode() {
        let get_peers = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
        let message = Message::decode(get_peers).unwrap();
        assert_eq!(
            message.body,
            Body::Query(Query {
                id: NodeId(*b"abcdefghij0123456789"),
                want: Want::default(),
                kind: QueryKind::GetPeers {
                    info_hash: NodeId(*b"mnopqrstuvwxyz123456")
                },
            })
        );
        assert_eq!(message.to_vec(), get_peers);

        let values = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
        let Body::Response(r) = Message::decode(values).unwrap().body else {
            panic!("a response")
        };
        assert_eq!(r.token.as_deref(), Some(&b"aoeusnth"[..]));
        assert_eq!(r.values.len(), 2);
        assert_eq!(r.values[0], "97.120.106.101:11893".parse().unwrap());

        let error = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        let message = Message::decode(error).unwrap();
        assert_eq!(
            message.body,
            Body::Error(ErrorMessage {
                code: 201,
                message: "A Generic Error Ocurred".into()
            })
        );
        assert_eq!(message.to_vec(), error);
    }

    #[test]
    fn announce_with_implied_port_and_ro_flag() {
        let bytes = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer2:roi1e1:t2:aa1:y1:qe";
        let message = Message::decode(bytes).unwrap();
        assert!(message.read_only);
        let Body::Query(Query {
            kind: QueryKind::AnnouncePeer {
                implied_port, port, ..
            },
            ..
        }) = message.body
        else {
            panic!("an announce")
        };
        assert!(implied_port);
        assert_eq!(port, 6881);
    }

    #[test]
    fn malformed_queries_keep_their_transaction() {
        // find_node without a target.
        let err = Message::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xy1:y1:qe")
            .unwrap_err();
        assert!(err.query);
        assert_eq!(err.transaction, TransactionId::from_slice(b"xy"));
        assert_eq!(err.kind, KrpcErrorKind::Missing("target"));
        // A short id.
        let err = Message::decode(b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe").unwrap_err();
        assert_eq!(
            err.kind,
            KrpcErrorKind::BadLength {
                field: "id",
                len: 3
            }
        );
        // A port out of range.
        let err = Message::decode(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:xy1:y1:qe").unwrap_err();
        assert_eq!(
            err.kind,
            KrpcErrorKind::OutOfRange {
                field: "port",
                value: 70000
            }
        );
        // No transaction id: nothing to answer.
        let err = Message::decode(b"d1:y1:qe").unwrap_err();
        assert_eq!(err.transaction, None);
        // Too long.
        let err = Message::decode(&vec![b'd'; MAX_MESSAGE_LEN + 1]).unwrap_err();
        assert_eq!(err.kind, KrpcErrorKind::TooLong(MAX_MESSAGE_LEN + 1));
    }

    #[test]
    fn unknown_methods_decode_as_unknown() {
        let message =
            Message::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q3:put1:t2:xy1:y1:qe").unwrap();
        let Body::Query(query) = message.body else {
            panic!("a query")
        };
        assert_eq!(
            query.kind,
            QueryKind::Unknown {
                method: Bytes::from_static(b"put")
            }
        );
    }

    #[test]
    fn compact_addresses() {
        let v4: SocketAddr = "1.2.3.4:6881".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!(compact_addr(v4).as_slice(), &[1, 2, 3, 4, 0x1a, 0xe1]);
        assert_eq!(parse_compact_addr(&compact_addr(v4)), Some(v4));
        assert_eq!(parse_compact_addr(&compact_addr(v6)), Some(v6));
        assert_eq!(parse_compact_addr(&[1, 2, 3]), None);
    }
}
