//! A map that remembers use order, so the least recently used entry can be let go first.
//! Byte budgets are the caller's: it evicts while it is over.

use std::collections::HashMap;
use std::hash::Hash;

pub struct Lru<K, V> {
    entries: HashMap<K, (V, u64)>,
    clock: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub fn new() -> Self {
        Lru {
            entries: HashMap::new(),
            clock: 0,
        }
    }

    /// The entry, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.clock += 1;
        let entry = self.entries.get_mut(key)?;
        entry.1 = self.clock;
        Some(&entry.0)
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.clock += 1;
        self.entries.insert(key, (value, self.clock));
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(v, _)| v)
    }

    /// Removes the least recently used entry that `may_go` lets go.
    pub fn evict(&mut self, may_go: impl Fn(&V) -> bool) -> Option<V> {
        let oldest = self
            .entries
            .iter()
            .filter(|(_, (v, _))| may_go(v))
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone())?;
        self.remove(&oldest)
    }

    pub fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|(v, _)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_that_may_go() {
        let mut lru = Lru::new();
        for k in ["a", "b", "c"] {
            lru.insert(k, k.len());
        }
        lru.get(&"a");
        assert_eq!(lru.evict(|_| true), Some(1), "b was used longest ago");
        assert!(lru.get(&"b").is_none());
        assert_eq!(lru.evict(|_| false), None);
        assert_eq!(lru.len(), 2);
    }
}
