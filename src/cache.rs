//! The snapshot cache: a collection is reused for `--cache.ttl`, and at most one collection is
//! in flight, whatever the number of concurrent scrapes; they all get its snapshot.
//!
//! The collection runs in its own task, so a scraper that hangs up does not cancel it: the
//! snapshot is stored for the next scrape anyway.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::collect::Snapshot;

type Collect = Arc<dyn Fn() -> BoxFuture<'static, Snapshot> + Send + Sync>;
type InFlight = Shared<BoxFuture<'static, Arc<Snapshot>>>;

/// TTL cache with single flight around a collection function.
#[derive(Clone)]
pub struct Cache {
    ttl: Duration,
    collect: Collect,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    current: Option<Arc<Snapshot>>,
    in_flight: Option<InFlight>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Where a served snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Younger than the TTL: no API call.
    Cached,
    /// From a collection this scrape started or joined.
    Collected,
}

impl Cache {
    /// A cache reusing snapshots for `ttl` (zero: never reused, but still shared by the
    /// scrapes that wait for the same collection).
    pub fn new<F>(ttl: Duration, collect: F) -> Cache
    where
        F: Fn() -> BoxFuture<'static, Snapshot> + Send + Sync + 'static,
    {
        Cache {
            ttl,
            collect: Arc::new(collect),
            state: Arc::default(),
        }
    }

    /// The snapshot to serve: the cached one while fresh, else the one being collected,
    /// starting a collection if none is in flight.
    pub async fn get(&self) -> (Arc<Snapshot>, Source) {
        let in_flight = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(current) = &state.current {
                if current.finished.elapsed() < self.ttl {
                    return (Arc::clone(current), Source::Cached);
                }
            }
            match &state.in_flight {
                Some(in_flight) => in_flight.clone(),
                None => {
                    let in_flight = self.start();
                    state.in_flight = Some(in_flight.clone());
                    in_flight
                }
            }
        };
        (in_flight.await, Source::Collected)
    }

    /// The last snapshot collected, if any, without collecting.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.current.clone()
    }

    /// Spawns a collection that stores its snapshot when done.
    fn start(&self) -> InFlight {
        let collection = (self.collect)();
        let state = Arc::clone(&self.state);
        let task = tokio::spawn(async move {
            let snapshot = Arc::new(collection.await);
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            state.current = Some(Arc::clone(&snapshot));
            state.in_flight = None;
            snapshot
        });
        let state = Arc::clone(&self.state);
        async move {
            match task.await {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    // The collection panicked: serve a failure rather than nothing, and let the
                    // next scrape try again.
                    let snapshot =
                        Arc::new(Snapshot::failed(format!("the collection task failed: {e}")));
                    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                    state.in_flight = None;
                    snapshot
                }
            }
        }
        .boxed()
        .shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Collected;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A cache whose collections take `work` (in tokio time) and are counted.
    fn counting_cache(ttl: Duration, work: Duration) -> (Cache, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let cache = Cache::new(ttl, move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(work).await;
                Snapshot::new(Collected {
                    projects: Ok(Vec::new()),
                    duration: work,
                    api_calls: n as u64,
                    incomplete_projects: 0,
                })
            }
            .boxed()
        });
        (cache, runs)
    }

    /// Within the TTL the cached snapshot is served without collecting; after it, a new one.
    #[tokio::test(start_paused = true)]
    async fn reuses_within_ttl() {
        let (cache, runs) = counting_cache(Duration::from_secs(60), Duration::from_secs(1));
        let (first, source) = cache.get().await;
        assert_eq!(
            (source, runs.load(Ordering::SeqCst)),
            (Source::Collected, 1)
        );
        tokio::time::advance(Duration::from_secs(59)).await;
        let (second, source) = cache.get().await;
        assert_eq!(source, Source::Cached);
        assert!(Arc::ptr_eq(&first, &second));
        tokio::time::advance(Duration::from_secs(2)).await;
        let (third, source) = cache.get().await;
        assert_eq!(
            (source, runs.load(Ordering::SeqCst)),
            (Source::Collected, 2)
        );
        assert_eq!(third.data.api_calls, 2);
    }

    /// Concurrent requests on an expired (here: zero-TTL) cache share one collection.
    #[tokio::test(start_paused = true)]
    async fn single_flight_with_zero_ttl() {
        let (cache, runs) = counting_cache(Duration::ZERO, Duration::from_secs(5));
        let scrapes: Vec<_> = (0..20)
            .map(|_| {
                tokio::spawn({
                    let cache = cache.clone();
                    async move { cache.get().await.0.data.api_calls }
                })
            })
            .collect();
        let results = futures::future::join_all(scrapes).await;
        assert!(results.iter().all(|r| *r.as_ref().unwrap() == 1));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Zero TTL: the next request collects again.
        assert_eq!(cache.get().await.0.data.api_calls, 2);
    }

    /// A scraper that gives up does not cancel the collection; its result is kept.
    #[tokio::test(start_paused = true)]
    async fn abandoned_collection_completes() {
        let (cache, runs) = counting_cache(Duration::from_secs(60), Duration::from_secs(5));
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get().await }
        });
        tokio::time::advance(Duration::from_secs(1)).await;
        waiting.abort();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(cache.current().is_some());
        let (_, source) = cache.get().await;
        assert_eq!((source, runs.load(Ordering::SeqCst)), (Source::Cached, 1));
    }
}
