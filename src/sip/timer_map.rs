//! A map of entries that each carry a deadline (the endpoint's transactions), with a heap of
//! those deadlines: the next timeout and the due entries are found without looking at every
//! entry, which a flood of tens of thousands of transactions would make costly on every
//! message (issue 10).
//!
//! Every change to an entry goes through [`TimerMap::get_mut`], whose guard pushes the
//! entry's new deadline when it moved. The heap is lazy: a removed entry or an old deadline
//! stays in it until it comes due, is then skipped, and the heap is rebuilt once stale
//! entries outnumber the live ones.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

/// What a [`TimerMap`] entry is due at.
pub trait Deadline {
    fn deadline(&self) -> Option<Instant>;
}

pub struct TimerMap<K, V> {
    map: HashMap<K, V>,
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Clone + Eq + Hash + Ord, V: Deadline> TimerMap<K, V> {
    pub fn new() -> Self {
        TimerMap {
            map: HashMap::new(),
            heap: BinaryHeap::new(),
        }
    }

    pub fn insert(&mut self, key: K, value: V) {
        let at = value.deadline();
        self.map.insert(key.clone(), value);
        if let Some(at) = at {
            self.push(at, key);
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// The entry, to change; its deadline is rescheduled when the guard drops.
    pub fn get_mut<'a, Q>(&'a mut self, key: &'a Q) -> Option<EntryMut<'a, K, Q, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let value = self.map.get_mut(key)?;
        let before = value.deadline();
        Some(EntryMut {
            key,
            value,
            heap: &mut self.heap,
            before,
        })
    }

    /// A key [`TimerMap::due`] returned, to fire: its heap entry is used up, so its deadline
    /// is pushed on drop even if firing left it where it was.
    pub fn get_due<'a, Q>(&'a mut self, key: &'a Q) -> Option<EntryMut<'a, K, Q, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut entry = self.get_mut(key)?;
        entry.before = None;
        Some(entry)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Keeps the entries `keep` says to; deadlines cannot change here.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.map.retain(|k, v| keep(k, v));
    }

    /// The earliest deadline; possibly one that is gone, which only wakes the caller early.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The keys of the entries due by `now`, each once, to fire with [`TimerMap::get_due`].
    pub fn due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.heap.peek()
            && *at <= now
        {
            let Some(Reverse((at, key))) = self.heap.pop() else {
                break;
            };
            // Skips removed entries, deadlines that have moved (the new one is queued) and
            // twins (equal entries pop one after the other).
            let current = self.map.get(&key).and_then(Deadline::deadline);
            if current == Some(at) && due.last() != Some(&key) {
                due.push(key);
            }
        }
        self.compact();
        due
    }

    /// Gives memory back after a flood.
    pub fn shrink(&mut self) {
        if oversized(self.map.len(), self.map.capacity()) {
            self.map.shrink_to_fit();
        }
        if oversized(self.heap.len(), self.heap.capacity()) {
            self.heap.shrink_to_fit();
        }
    }

    fn push(&mut self, at: Instant, key: K) {
        self.heap.push(Reverse((at, key)));
        self.compact();
    }

    /// Rebuilds the heap from the live entries once stale ones outnumber them.
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.map.len() + 64 {
            self.heap = (self.map.iter())
                .filter_map(|(k, v)| Some(Reverse((v.deadline()?, k.clone()))))
                .collect();
        }
    }
}

impl<K: Clone + Eq + Hash + Ord, V: Deadline> Default for TimerMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a collection holds under a quarter of its capacity (worth shrinking).
pub fn oversized(len: usize, capacity: usize) -> bool {
    capacity > 64 && len < capacity / 4
}

/// A changed entry of a [`TimerMap`]: its new deadline is pushed on drop.
pub struct EntryMut<'a, K: Ord, Q: ToOwned<Owned = K> + ?Sized, V: Deadline> {
    key: &'a Q,
    value: &'a mut V,
    heap: &'a mut BinaryHeap<Reverse<(Instant, K)>>,
    before: Option<Instant>,
}

impl<K: Ord, Q: ToOwned<Owned = K> + ?Sized, V: Deadline> Deref for EntryMut<'_, K, Q, V> {
    type Target = V;
    fn deref(&self) -> &V {
        self.value
    }
}

impl<K: Ord, Q: ToOwned<Owned = K> + ?Sized, V: Deadline> DerefMut for EntryMut<'_, K, Q, V> {
    fn deref_mut(&mut self) -> &mut V {
        self.value
    }
}

impl<K: Ord, Q: ToOwned<Owned = K> + ?Sized, V: Deadline> Drop for EntryMut<'_, K, Q, V> {
    fn drop(&mut self) {
        let after = self.value.deadline();
        if let Some(at) = after.filter(|_| after != self.before) {
            self.heap.push(Reverse((at, self.key.to_owned())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An entry due at `at`, as a transaction whose timer is set or stopped.
    struct Timer(Option<Instant>);

    impl Deadline for Timer {
        fn deadline(&self) -> Option<Instant> {
            self.0
        }
    }

    /// The keys a full scan finds due: what the endpoint did before the heap.
    fn scan(map: &TimerMap<u32, Timer>, now: Instant) -> Vec<u32> {
        let mut keys: Vec<u32> = (map.iter())
            .filter(|(_, t)| t.0.is_some_and(|at| at <= now))
            .map(|(k, _)| *k)
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn due_entries_come_out_once_and_removed_or_moved_ones_not_at_all() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut map = TimerMap::new();
        for (k, at) in [(1, 10), (2, 20), (3, 30), (4, 40)] {
            map.insert(k, Timer(Some(ms(at))));
        }
        map.remove(&2);
        map.get_mut(&3).unwrap().0 = Some(ms(50));
        map.get_mut(&4).unwrap().0 = None;
        assert_eq!(map.next_deadline(), Some(ms(10)));
        assert_eq!(map.due(ms(45)), vec![1]);
        assert_eq!(map.due(ms(45)), Vec::<u32>::new(), "fired once");
        assert_eq!(map.due(ms(50)), vec![3], "at its new deadline");
    }

    #[test]
    fn an_entry_fired_without_moving_its_deadline_stays_due() {
        let t0 = Instant::now();
        let mut map = TimerMap::new();
        map.insert(7, Timer(Some(t0)));
        assert_eq!(map.due(t0), vec![7]);
        drop(map.get_due(&7));
        assert_eq!(map.due(t0), vec![7], "still due, as a scan finds it");
    }

    #[test]
    fn random_operations_agree_with_a_full_scan_and_the_heap_stays_bounded() {
        let t0 = Instant::now();
        let mut map = TimerMap::new();
        let mut rng = crate::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = move |n: u64| rng.below(n);
        let mut now = t0;
        for step in 0..20_000 {
            let key = next(200) as u32;
            let at = (next(5) > 0).then(|| now + Duration::from_millis(next(1000)));
            match next(4) {
                0 => map.insert(key, Timer(at)),
                1 => drop(map.remove(&key)),
                2 => drop(map.get_mut(&key).map(|mut t| t.0 = at)),
                _ => {
                    now += Duration::from_millis(next(50));
                    let expected = scan(&map, now);
                    let mut due = map.due(now);
                    due.sort();
                    assert_eq!(due, expected, "step {step}");
                    for key in due {
                        // Firing moves the timer on, as a transaction's does.
                        let later = now + Duration::from_millis(1 + next(500));
                        map.get_due(&key).unwrap().0 = (next(3) > 0).then_some(later);
                    }
                }
            }
            let earliest = map.values().filter_map(|t| t.0).min();
            if let Some(earliest) = earliest {
                let next = map.next_deadline().expect("a deadline while one is set");
                assert!(next <= earliest, "never wakes late");
            }
            assert!(
                map.heap.len() <= 2 * map.map.len() + 65,
                "stale entries are dropped"
            );
        }
    }
}
