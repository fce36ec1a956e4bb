//! The snapshot cache: a collection is reused for `--cache.ttl`, and at most one collection is
//! in flight, whatever the number of concurrent scrapes; they all get its snapshot.
//!
//! A scrape waits for a collection only as long as its budget (the scraper's timeout, see
//! [`crate::server`]); when the budget runs out it gets the last snapshot instead, and the
//! collection runs on in its own task, so the next scrape gets it. A scraper that hangs up
//! does not cancel it either. Project data older than `--cache.max-stale` is never served.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::collect::{Snapshot, stale};
use crate::render::Rendered;

type Collect = Arc<dyn Fn() -> BoxFuture<'static, Rendered> + Send + Sync>;
type InFlight = Shared<BoxFuture<'static, Arc<Rendered>>>;

/// TTL cache with single flight around a collection function.
#[derive(Clone)]
pub struct Cache {
    ttl: Duration,
    max_stale: Duration,
    collect: Collect,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    current: Option<Arc<Rendered>>,
    in_flight: Option<InFlight>,
    /// The current snapshot is not to be reused (see [`Cache::invalidate`]).
    invalidated: bool,
    /// Counts `invalidate` calls: a collection clears `invalidated` only if none came since
    /// it started (one started before a token change does not make its result fresh).
    generation: u64,
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
    /// The collection did not finish within the scrape's budget: the last snapshot, or a
    /// pending one without data when there is none yet.
    Timeout,
}

impl Source {
    /// The `result` label of `gitlab_exporter_scrapes_total`.
    pub fn label(self) -> &'static str {
        match self {
            Source::Cached => "cached",
            Source::Collected => "collected",
            Source::Timeout => "timeout",
        }
    }
}

impl Cache {
    /// A cache reusing snapshots for `ttl` (zero: never reused, but still shared by the
    /// scrapes that wait for the same collection), and serving project data for at most
    /// `max_stale` after it was collected.
    pub fn new<F>(ttl: Duration, max_stale: Duration, collect: F) -> Cache
    where
        F: Fn() -> BoxFuture<'static, Rendered> + Send + Sync + 'static,
    {
        Cache {
            ttl,
            max_stale,
            collect: Arc::new(collect),
            state: Arc::default(),
        }
    }

    /// The snapshot to serve: the cached one while fresh, else the one being collected
    /// (starting a collection if none is in flight) if it finishes within `budget`, else the
    /// last one.
    pub async fn get(&self, budget: Duration) -> (Arc<Rendered>, Source) {
        let in_flight = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(current) = self.current_locked(&mut state) {
                if current.finished.elapsed() < self.ttl && !state.invalidated {
                    return (current, Source::Cached);
                }
            }
            match &state.in_flight {
                Some(in_flight) => in_flight.clone(),
                None => {
                    let in_flight = self.start(state.generation);
                    state.in_flight = Some(in_flight.clone());
                    in_flight
                }
            }
        };
        match tokio::time::timeout(budget, in_flight).await {
            Ok(snapshot) => (snapshot, Source::Collected),
            Err(_) => {
                let last = self.current();
                let last = last.unwrap_or_else(|| Arc::new(Rendered::new(Snapshot::pending())));
                (last, Source::Timeout)
            }
        }
    }

    /// The last snapshot collected, if any, without collecting.
    pub fn current(&self) -> Option<Arc<Rendered>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.current_locked(&mut state)
    }

    /// Makes the next scrape collect, whatever the TTL (the token changed).
    pub fn invalidate(&self) {
        // The current snapshot stays servable, but no longer counts as fresh.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.invalidated = true;
        state.generation += 1;
    }

    /// The current snapshot, without what grew older than `max_stale` (see [`stale::expire`]).
    fn current_locked(&self, state: &mut State) -> Option<Arc<Rendered>> {
        let current = state.current.as_ref()?;
        if let Some(expired) = stale::expire(&current.snapshot, self.max_stale) {
            state.current = Some(Arc::new(Rendered::new(expired)));
        }
        state.current.clone()
    }

    /// Spawns a collection that stores its snapshot when done.
    fn start(&self, generation: u64) -> InFlight {
        let collection = (self.collect)();
        let state = Arc::clone(&self.state);
        let task = tokio::spawn(async move {
            let snapshot = Arc::new(collection.await);
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            state.current = Some(Arc::clone(&snapshot));
            state.in_flight = None;
            if state.generation == generation {
                state.invalidated = false;
            }
            snapshot
        });
        let state = Arc::clone(&self.state);
        async move {
            match task.await {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    // The collection panicked: serve a failure rather than nothing, and let the
                    // next scrape try again.
                    let snapshot = Arc::new(Rendered::new(Snapshot::failed(format!(
                        "the collection task failed: {e}"
                    ))));
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

    const FOREVER: Duration = Duration::from_secs(3600);

    /// A cache whose collections take `work` (in tokio time) and are counted.
    fn counting_cache(ttl: Duration, work: Duration) -> (Cache, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let cache = Cache::new(ttl, Duration::from_secs(600), move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(work).await;
                Rendered::new(Snapshot::new(Collected {
                    projects_from: Some(crate::collect::Stamp::now()),
                    duration: work,
                    api_calls: n as u64,
                    ..Collected::default()
                }))
            }
            .boxed()
        });
        (cache, runs)
    }

    /// Within the TTL the cached snapshot is served without collecting; after it, a new one.
    #[tokio::test(start_paused = true)]
    async fn reuses_within_ttl() {
        let (cache, runs) = counting_cache(Duration::from_secs(60), Duration::from_secs(1));
        let (first, source) = cache.get(FOREVER).await;
        assert_eq!(
            (source, runs.load(Ordering::SeqCst)),
            (Source::Collected, 1)
        );
        tokio::time::advance(Duration::from_secs(59)).await;
        let (second, source) = cache.get(FOREVER).await;
        assert_eq!(source, Source::Cached);
        assert!(Arc::ptr_eq(&first, &second));
        tokio::time::advance(Duration::from_secs(2)).await;
        let (third, source) = cache.get(FOREVER).await;
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
                    async move { cache.get(FOREVER).await.0.data.api_calls }
                })
            })
            .collect();
        let results = futures::future::join_all(scrapes).await;
        assert!(results.iter().all(|r| *r.as_ref().unwrap() == 1));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Zero TTL: the next request collects again.
        assert_eq!(cache.get(FOREVER).await.0.data.api_calls, 2);
    }

    /// A scraper that gives up does not cancel the collection; its result is kept.
    #[tokio::test(start_paused = true)]
    async fn abandoned_collection_completes() {
        let (cache, runs) = counting_cache(Duration::from_secs(60), Duration::from_secs(5));
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(FOREVER).await }
        });
        tokio::time::advance(Duration::from_secs(1)).await;
        waiting.abort();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(cache.current().is_some());
        let (_, source) = cache.get(FOREVER).await;
        assert_eq!((source, runs.load(Ordering::SeqCst)), (Source::Cached, 1));
    }

    /// A collection slower than the budget: the scrape gets the last snapshot (or a pending
    /// one at first) in time, the collection runs on, and the next scrape gets its result.
    #[tokio::test(start_paused = true)]
    async fn budget_serves_the_last_snapshot() {
        let (cache, runs) = counting_cache(Duration::from_secs(20), Duration::from_secs(30));
        let budget = Duration::from_secs(10);
        let (first, source) = cache.get(budget).await;
        assert_eq!(source, Source::Timeout);
        assert!(first.data.pending && first.data.projects_from.is_none());
        // A scrape with time enough joins the same collection.
        let (second, source) = cache.get(FOREVER).await;
        assert_eq!((source, second.data.api_calls), (Source::Collected, 1));
        // Past the TTL: a new collection starts; it is late, so the first one's data is served.
        tokio::time::advance(Duration::from_secs(20)).await;
        let (third, source) = cache.get(budget).await;
        assert_eq!((source, third.data.api_calls), (Source::Timeout, 1));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(cache.current().map(|s| s.data.api_calls), Some(2));
    }

    /// Project data older than max-stale is dropped from what is served.
    #[tokio::test(start_paused = true)]
    async fn data_older_than_max_stale_is_not_served() {
        let (cache, _) = counting_cache(Duration::from_secs(60), Duration::from_secs(1));
        let cache = Cache {
            max_stale: Duration::from_secs(120),
            ..cache
        };
        let (first, _) = cache.get(FOREVER).await;
        assert!(first.data_age().is_some());
        tokio::time::advance(Duration::from_secs(121)).await;
        let current = cache.current().expect("a snapshot");
        assert!(current.data_age().is_none() && current.data.projects.is_empty());
        assert_eq!(current.data.api_calls, 1);
    }

    /// After `invalidate`, the next scrape collects even within the TTL.
    #[tokio::test(start_paused = true)]
    async fn invalidate_forces_a_collection() {
        let (cache, runs) = counting_cache(Duration::from_secs(60), Duration::from_secs(1));
        cache.get(FOREVER).await;
        cache.invalidate();
        let (_, source) = cache.get(FOREVER).await;
        assert_eq!(
            (source, runs.load(Ordering::SeqCst)),
            (Source::Collected, 2)
        );
        let (_, source) = cache.get(FOREVER).await;
        assert_eq!(source, Source::Cached);
    }

    /// A SIGHUP (invalidate) during a collection holds: the collection that was running (with the
    /// old token) does not count as fresh.
    #[tokio::test(start_paused = true)]
    async fn invalidate_during_a_collection_holds() {
        let (cache, runs) = counting_cache(Duration::from_secs(60), Duration::from_secs(5));
        cache.get(FOREVER).await; // run 1 done
        tokio::time::advance(Duration::from_secs(61)).await;
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(FOREVER).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await; // run 2 in flight (old token)
        cache.invalidate(); // token rotated
        waiting.await.unwrap();
        let (_, source) = cache.get(FOREVER).await;
        assert_eq!(
            (source, runs.load(Ordering::SeqCst)),
            (Source::Collected, 3),
            "the collection started with the old token is not served as fresh"
        );
    }
}
