//! `get_peers` tokens: proof that an `announce_peer` comes from an address that asked
//! recently (BEP5).
//!
//! A token is the first 8 bytes of SHA-1(requester's IP ‖ secret). The secret changes every
//! [`ROTATION`] (5 minutes) and the previous one is still accepted, so a token is good for
//! 5 to 10 minutes, and nothing per requester is stored.

use core::net::IpAddr;
use core::time::Duration;

use sha1::{Digest, Sha1};

use crate::rng::Rng;
use crate::time::Instant;

/// How often the secret changes.
pub(crate) const ROTATION: Duration = Duration::from_secs(5 * 60);
/// Token length in bytes.
pub(crate) const TOKEN_LEN: usize = 8;

/// The current and previous secrets.
#[derive(Debug)]
pub(crate) struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
}

impl Tokens {
    pub(crate) fn new(now: Instant, rng: &mut Rng) -> Self {
        let current = secret(rng);
        Self {
            current,
            previous: current,
            rotated_at: now,
        }
    }

    /// Rotates the secret if [`ROTATION`] has passed since the last time.
    pub(crate) fn rotate_if_due(&mut self, now: Instant, rng: &mut Rng) {
        if now.saturating_duration_since(self.rotated_at) >= ROTATION {
            self.previous = self.current;
            self.current = secret(rng);
            self.rotated_at = now;
        }
    }

    /// When the next rotation is due.
    #[cfg(test)]
    pub(crate) fn next_rotation(&self) -> Instant {
        self.rotated_at + ROTATION
    }

    /// The token for a requester at `ip`.
    pub(crate) fn token_for(&self, ip: IpAddr) -> [u8; TOKEN_LEN] {
        derive(&self.current, ip)
    }

    /// Whether `token` is one we gave `ip` under the current or the previous secret.
    pub(crate) fn is_valid(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == derive(&self.current, ip) || token == derive(&self.previous, ip)
    }
}

fn secret(rng: &mut Rng) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    out[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    out
}

fn derive(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut hasher = Sha1::new();
    match ip {
        IpAddr::V4(v4) => hasher.update(v4.octets()),
        IpAddr::V6(v6) => hasher.update(v6.octets()),
    }
    hasher.update(secret);
    let digest = hasher.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_last_one_to_two_rotations() {
        let mut rng = Rng::new(5);
        let mut tokens = Tokens::new(Instant::ZERO, &mut rng);
        let ip: IpAddr = "100.64.0.1".parse().unwrap();
        let other: IpAddr = "100.64.0.2".parse().unwrap();
        let token = tokens.token_for(ip);
        assert!(tokens.is_valid(ip, &token));
        assert!(!tokens.is_valid(other, &token));
        assert!(!tokens.is_valid(ip, &token[..4]));

        // Not yet due: nothing changes.
        tokens.rotate_if_due(Instant::from_secs(299), &mut rng);
        assert_eq!(tokens.token_for(ip), token);

        // After one rotation the old token is still good, but new ones differ.
        tokens.rotate_if_due(Instant::from_secs(300), &mut rng);
        assert!(tokens.is_valid(ip, &token));
        assert_ne!(tokens.token_for(ip), token);
        assert_eq!(tokens.next_rotation(), Instant::from_secs(600));

        // After two it has expired.
        tokens.rotate_if_due(Instant::from_secs(600), &mut rng);
        assert!(!tokens.is_valid(ip, &token));
    }
}
