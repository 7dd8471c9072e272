//! A simulated HTTP tracker for the session simulator: it reads announce URLs, keeps the
//! swarms, answers with compact peer lists, and can be scripted to answer otherwise.

use std::collections::{BTreeMap, VecDeque};

use core::net::{IpAddr, SocketAddr};

/// An announce as the tracker read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimAnnounce {
    /// The 20-byte `info_hash`.
    pub info_hash: Vec<u8>,
    /// `event`, if any.
    pub event: Option<String>,
    /// `left`.
    pub left: u64,
    /// `uploaded`.
    pub uploaded: u64,
    /// `downloaded`.
    pub downloaded: u64,
    /// The announcing peer (its node's address and the announced port).
    pub peer: SocketAddr,
}

/// The tracker; see the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct SimTracker {
    /// Every announce, in order.
    pub announces: Vec<SimAnnounce>,
    /// Answers given instead of the normal one, first in first out.
    pub script: VecDeque<Result<(u16, Vec<u8>), String>>,
    /// The `interval` it gives, in seconds.
    pub interval: u64,
    swarms: BTreeMap<Vec<u8>, Vec<SocketAddr>>,
}

impl SimTracker {
    /// The answer to a GET of `url` from `ip`.
    pub fn answer(&mut self, url: &str, ip: IpAddr) -> Result<(u16, Vec<u8>), String> {
        let announce = parse(url, ip);
        if let Some(a) = &announce {
            self.announces.push(a.clone());
        }
        if let Some(reply) = self.script.pop_front() {
            return reply;
        }
        let Some(a) = announce else {
            return Ok((400, b"d14:failure reason11:bad requeste".to_vec()));
        };
        let swarm = self.swarms.entry(a.info_hash.clone()).or_default();
        swarm.retain(|p| *p != a.peer);
        if a.event.as_deref() != Some("stopped") {
            swarm.push(a.peer);
        }
        let mut peers = Vec::new();
        for p in swarm.iter().filter(|p| **p != a.peer) {
            if let (IpAddr::V4(v4), port) = (p.ip(), p.port()) {
                peers.extend_from_slice(&v4.octets());
                peers.extend_from_slice(&port.to_be_bytes());
            }
        }
        let interval = if self.interval == 0 {
            1800
        } else {
            self.interval
        };
        // BEP24: the announcer's address as the tracker sees it.
        let octets = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let mut body = format!("d11:external ip{}:", octets.len()).into_bytes();
        body.extend_from_slice(&octets);
        body.extend_from_slice(format!("8:intervali{interval}e5:peers{}:", peers.len()).as_bytes());
        body.extend_from_slice(&peers);
        body.push(b'e');
        Ok((200, body))
    }

    /// The peers the tracker knows for a swarm.
    pub fn swarm(&self, info_hash: &[u8]) -> &[SocketAddr] {
        self.swarms.get(info_hash).map_or(&[], Vec::as_slice)
    }
}

fn parse(url: &str, ip: IpAddr) -> Option<SimAnnounce> {
    let query = url.split_once('?')?.1;
    let mut fields = BTreeMap::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=')?;
        fields.insert(k.to_owned(), unescape(v));
    }
    let number =
        |k: &str| -> Option<u64> { std::str::from_utf8(fields.get(k)?).ok()?.parse().ok() };
    Some(SimAnnounce {
        info_hash: fields.get("info_hash")?.clone(),
        event: fields
            .get("event")
            .map(|e| String::from_utf8_lossy(e).into_owned()),
        left: number("left")?,
        uploaded: number("uploaded")?,
        downloaded: number("downloaded")?,
        peer: SocketAddr::new(ip, u16::try_from(number("port")?).ok()?),
    })
}

fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}
