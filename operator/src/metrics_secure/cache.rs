//! The review cache: the decision for a (token, verb, path) for a short while, so a scrape every
//! 15 s costs two API requests a minute rather than two per scrape. Keys are SHA-256 digests:
//! the cache holds no token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::auth::Decision;

/// How long decisions are kept, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// An allowed request: a revoked token or binding still gets through for up to this long.
    pub allowed_ttl: Duration,
    /// A denied request (401 or 403): a binding just created takes effect within this long.
    pub denied_ttl: Duration,
    /// At most this many decisions; past it the one closest to expiry goes first.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            allowed_ttl: Duration::from_secs(60),
            denied_ttl: Duration::from_secs(10),
            max_entries: 1024,
        }
    }
}

/// SHA-256 of the token, the verb and the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    pub fn new(token: &str, verb: &str, path: &str) -> Key {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        // Lengths first, so that no two different triples hash the same input.
        for part in [token, verb, path] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        Key(key)
    }
}

#[derive(Debug)]
pub struct Cache {
    config: CacheConfig,
    entries: HashMap<Key, (Decision, Instant)>,
}

impl Cache {
    pub fn new(config: CacheConfig) -> Cache {
        Cache {
            config,
            entries: HashMap::new(),
        }
    }

    /// The decision for `key`, if one was made less than its TTL ago.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Decision> {
        match self.entries.get(key) {
            Some((decision, expires)) if *expires > now => Some(decision.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, key: Key, decision: Decision, now: Instant) {
        let ttl = if decision.is_allowed() {
            self.config.allowed_ttl
        } else {
            self.config.denied_ttl
        };
        if ttl.is_zero() || self.config.max_entries == 0 {
            return;
        }
        if self.entries.len() >= self.config.max_entries && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, expires)| *expires > now);
            if self.entries.len() >= self.config.max_entries
                && let Some(soonest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| *k)
            {
                self.entries.remove(&soonest);
            }
        }
        self.entries.insert(key, (decision, now + ttl));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Decision {
        Decision::Allowed {
            user: "system:serviceaccount:monitoring:prometheus".into(),
        }
    }

    fn forbidden() -> Decision {
        Decision::Forbidden {
            user: "system:serviceaccount:monitoring:other".into(),
            reason: String::new(),
        }
    }

    #[test]
    fn keys_differ_by_token_verb_and_path_and_do_not_hold_the_token() {
        let k = Key::new("token", "get", "/metrics");
        assert_eq!(k, Key::new("token", "get", "/metrics"));
        assert_ne!(k, Key::new("token2", "get", "/metrics"));
        assert_ne!(k, Key::new("token", "post", "/metrics"));
        assert_ne!(k, Key::new("token", "get", "/metrics/"));
        // The length prefix keeps a shifted boundary from colliding.
        assert_ne!(Key::new("ab", "c", "/"), Key::new("a", "bc", "/"));
        assert!(!format!("{k:?}").contains("token"));
    }

    #[test]
    fn allowed_decisions_last_longer_than_denied_ones() {
        let mut cache = Cache::new(CacheConfig::default());
        let t0 = Instant::now();
        let (a, d) = (
            Key::new("a", "get", "/metrics"),
            Key::new("d", "get", "/metrics"),
        );
        cache.insert(a, allowed(), t0);
        cache.insert(d, forbidden(), t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(cache.get(&a, at(9)), Some(allowed()));
        assert_eq!(cache.get(&d, at(9)), Some(forbidden()));
        assert_eq!(cache.get(&d, at(10)), None, "denied: 10 s");
        assert_eq!(cache.get(&a, at(59)), Some(allowed()));
        assert_eq!(cache.get(&a, at(60)), None, "allowed: 60 s");
        assert!(cache.is_empty(), "expired entries are dropped when read");
    }

    #[test]
    fn the_cache_is_bounded_and_drops_what_expires_first() {
        let mut cache = Cache::new(CacheConfig {
            max_entries: 3,
            ..CacheConfig::default()
        });
        let t0 = Instant::now();
        let key = |i: u32| Key::new(&format!("token-{i}"), "get", "/metrics");
        cache.insert(key(0), allowed(), t0);
        cache.insert(key(1), forbidden(), t0); // expires first
        cache.insert(key(2), allowed(), t0);
        cache.insert(key(3), allowed(), t0 + Duration::from_secs(1));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key(1), t0), None);
        for i in [0, 2, 3] {
            assert!(cache.get(&key(i), t0 + Duration::from_secs(1)).is_some());
        }
        // Expired entries go before live ones.
        let later = t0 + Duration::from_secs(61);
        for i in 10..13 {
            cache.insert(key(i), allowed(), later);
        }
        assert_eq!(cache.len(), 3);
        for i in 10..13 {
            assert!(cache.get(&key(i), later).is_some());
        }
    }
}
