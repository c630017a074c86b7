//! A bounded in-process copy of write-once facts this process has read or
//! written: a fact once stored never changes, so its copy stays true until purge.
//!
//! Only facts that exist are kept, never the absence of one (another instance
//! may write it at any moment), and never markers, which are deleted. Entries
//! leave first-in first-out when the byte budget is reached, and after a
//! maximum age, which bounds how long a purge run by another process goes
//! unseen here.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes an entry is charged besides its serialized size: the key, the map
/// slot and the parsed value's own overhead.
const ENTRY_OVERHEAD: usize = 160;

/// The cache; a budget of 0 bytes keeps nothing.
pub struct FactCache {
    budget: usize,
    max_age: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Keys in insertion order, each with the sequence number of its entry.
    order: VecDeque<(String, u64)>,
    weight: usize,
    next_seq: u64,
}

struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    weight: usize,
    seq: u64,
    at: Instant,
}

impl std::fmt::Debug for FactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactCache")
            .field("budget", &self.budget)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl FactCache {
    /// Keeps up to `budget` bytes of facts (as stored), each for at most `max_age`.
    pub fn new(budget: usize, max_age: Duration) -> Self {
        FactCache {
            budget,
            max_age,
            inner: Mutex::default(),
        }
    }

    /// A cache that keeps nothing.
    pub fn disabled() -> Self {
        FactCache::new(0, Duration::ZERO)
    }

    /// The copy kept under `key`, when young enough; an older one is dropped.
    fn lookup(&self, key: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        if self.budget == 0 {
            return None;
        }
        let mut inner = self.inner.lock().ok()?;
        let entry = inner.entries.get(key)?;
        if entry.at.elapsed() > self.max_age {
            let weight = entry.weight;
            inner.entries.remove(key);
            inner.weight -= weight;
            return None;
        }
        Some(entry.value.clone())
    }

    /// The fact stored under `key`, when a copy of type `T` is kept and young enough.
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        self.lookup(key)?.downcast::<T>().ok()
    }

    /// Whether a young enough copy of the fact under `key` is kept.
    pub fn contains(&self, key: &str) -> bool {
        self.lookup(key).is_some()
    }

    /// Keeps `value` as the fact stored under `key`, `stored_len` bytes as
    /// stored. Call it only once the fact is durably stored or was read back.
    pub fn insert<T: Any + Send + Sync>(&self, key: &str, value: Arc<T>, stored_len: usize) {
        let weight = stored_len + key.len() + ENTRY_OVERHEAD;
        if self.budget == 0 || weight > self.budget {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let inner = &mut *inner;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let entry = Entry {
            value,
            weight,
            seq,
            at: Instant::now(),
        };
        if let Some(old) = inner.entries.insert(key.to_owned(), entry) {
            inner.weight -= old.weight;
        }
        inner.weight += weight;
        inner.order.push_back((key.to_owned(), seq));
        // Keys inserted again or dropped for their age leave stale places in
        // the queue; past twice the live ones, the stale places go.
        if inner.order.len() > 2 * inner.entries.len() + 64 {
            let entries = &inner.entries;
            inner
                .order
                .retain(|(k, s)| entries.get(k).is_some_and(|e| e.seq == *s));
        }
        while inner.weight > self.budget {
            let Some((k, seq)) = inner.order.pop_front() else {
                break;
            };
            // A key inserted again, or already dropped for its age, has a
            // newer (or no) entry: leave that one.
            if inner.entries.get(&k).is_some_and(|e| e.seq == seq) {
                if let Some(e) = inner.entries.remove(&k) {
                    inner.weight -= e.weight;
                }
            }
        }
    }

    /// Drops the copies of every fact whose key starts with `prefix`.
    pub fn forget_prefix(&self, prefix: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            let inner = &mut *inner;
            let mut freed = 0;
            inner.entries.retain(|k, e| {
                let keep = !k.starts_with(prefix);
                if !keep {
                    freed += e.weight;
                }
                keep
            });
            inner.weight -= freed;
        }
    }

    /// Bytes charged to the facts kept now.
    pub fn weight(&self) -> usize {
        self.inner.lock().map(|i| i.weight).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(budget: usize) -> FactCache {
        FactCache::new(budget, Duration::from_secs(60))
    }

    #[test]
    fn a_kept_fact_comes_back_as_its_own_type_only() {
        let c = cache(10_000);
        c.insert("a", Arc::new(String::from("fact")), 4);
        assert_eq!(
            c.get::<String>("a").as_deref().map(String::as_str),
            Some("fact")
        );
        assert!(c.get::<u32>("a").is_none());
        assert!(c.get::<String>("b").is_none());
        assert!(c.contains("a"));
        assert!(!c.contains("b"));
    }

    #[test]
    fn the_oldest_facts_leave_when_the_budget_is_reached() {
        let per = 100 + 1 + ENTRY_OVERHEAD;
        let c = cache(per * 3);
        for k in ["a", "b", "c", "d"] {
            c.insert(k, Arc::new(k.to_owned()), 100);
        }
        assert!(
            c.get::<String>("a").is_none(),
            "the first in is the first out"
        );
        for k in ["b", "c", "d"] {
            assert!(c.get::<String>(k).is_some(), "{k} is kept");
        }
        assert_eq!(c.weight(), per * 3);
    }

    #[test]
    fn a_fact_older_than_the_maximum_age_is_not_served() {
        let c = FactCache::new(10_000, Duration::ZERO);
        c.insert("a", Arc::new(1u32), 1);
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.get::<u32>("a").is_none());
        assert_eq!(c.weight(), 0, "an expired entry gives its bytes back");
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let off = FactCache::disabled();
        off.insert("a", Arc::new(1u32), 1);
        assert!(off.get::<u32>("a").is_none());
        assert!(!off.contains("a"));
    }

    #[test]
    fn forget_prefix_drops_one_request_s_facts_only() {
        let c = cache(10_000);
        c.insert("confirmations/x/request.json", Arc::new(1u32), 10);
        c.insert("confirmations/x/call.json", Arc::new(3u32), 10);
        c.insert("confirmations/y/request.json", Arc::new(2u32), 10);
        c.forget_prefix("confirmations/x/");
        assert!(c.get::<u32>("confirmations/x/request.json").is_none());
        assert!(c.get::<u32>("confirmations/x/call.json").is_none());
        assert_eq!(
            c.get::<u32>("confirmations/y/request.json").as_deref(),
            Some(&2)
        );
        assert_eq!(
            c.weight(),
            10 + "confirmations/y/request.json".len() + ENTRY_OVERHEAD
        );
    }

    #[test]
    fn inserting_a_key_again_charges_it_once() {
        let c = cache(10_000);
        for _ in 0..1000 {
            c.insert("a", Arc::new(1u32), 10);
        }
        assert_eq!(c.weight(), 10 + 1 + ENTRY_OVERHEAD);
        let inner = c.inner.lock().map(|i| i.order.len()).unwrap_or(usize::MAX);
        assert!(inner <= 2 + 64, "the order queue stays bounded: {inner}");
    }

    #[test]
    fn stale_places_in_the_queue_never_push_live_facts_out() {
        let c = cache(1 << 20);
        for k in 0..10 {
            c.insert(&format!("live-{k}"), Arc::new(k), 10);
        }
        // A burst of inserts of one key (say, concurrent misses of one fact).
        for _ in 0..1000 {
            c.insert("hot", Arc::new(0), 10);
        }
        for k in 0..10 {
            assert!(
                c.get::<i32>(&format!("live-{k}")).is_some(),
                "live-{k} is kept"
            );
        }
    }
}
