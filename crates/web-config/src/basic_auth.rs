//! `basic_auth_users`: basic authentication against bcrypt hashes, with the credentials
//! accepted once remembered as keyed hashes, and the bcrypt runs on one thread of their own
//! behind a bounded queue (see the crate's docs, "Password guessing").

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hyper::header::HeaderValue;
use ring::hmac;

use crate::{AuthResult, Denied};

/// Password checks that may wait for the verification thread besides the one it runs; beyond,
/// requests are refused at once with a 429. With bcrypt at cost 10 (about 50 ms), a check
/// waits at most about half a second.
pub const VERIFY_QUEUE: usize = 8;

/// Password checks one client (an IPv4 address, an IPv6 /64) may have waiting or running: a
/// single guesser cannot fill the queue for everybody else.
pub const VERIFY_PER_CLIENT: usize = 2;

/// Accepted passwords remembered (as keyed hashes), so that bcrypt runs once per user rather
/// than on every scrape. Only right passwords go in, at most one per user; the cap is a guard.
const CACHE_CAPACITY: usize = 1024;

/// bcrypt reads at most 72 bytes of a password; a longer one is refused rather than truncated.
const BCRYPT_MAX_PASSWORD: usize = 72;

/// A `basic_auth_users` entry that cannot be used. The message starts with the user's name and
/// never repeats the hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BasicAuthError {
    /// The user name has a `:`, which the `Authorization` header cannot carry.
    #[error("{user}: a user name cannot contain ':' (basic authentication splits on it)")]
    ColonInName {
        /// The user name.
        user: String,
    },
    /// The password hash is not a bcrypt hash.
    #[error(
        "{user}: not a bcrypt hash ({reason}); make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
    )]
    NotBcrypt {
        /// The user name.
        user: String,
        /// What the bcrypt crate found wrong (without the hash).
        reason: String,
    },
    /// The bcrypt hash has a cost outside 4 to 31.
    #[error("{user}: bcrypt cost {cost} is out of range (4 to 31)")]
    Cost {
        /// The user name.
        user: String,
        /// The hash's cost.
        cost: u32,
    },
    /// The key of the cache of accepted credentials could not be made.
    #[error("cannot get random bytes for the credential cache")]
    Random,
}

/// Basic authentication: the checker, and the queue of checks for its thread.
pub(crate) struct BasicAuth {
    checker: Arc<Checker>,
    /// The verification thread's queue, started with the first check that needs bcrypt
    /// (`None`: the thread could not be started; checks are then refused as busy).
    queue: OnceLock<Option<mpsc::Sender<Job>>>,
    /// Checks waiting or running whose requests are still there, by client.
    pending: Arc<Mutex<Pending>>,
}

struct User {
    name: Vec<u8>,
    hash: String,
}

/// The users and the cache of accepted credentials: what a password check needs, shared with
/// the verification thread.
struct Checker {
    users: Vec<User>,
    /// HMAC-SHA256 (with a key made at start) of each accepted user and password: the
    /// passwords themselves are not kept.
    accepted: Mutex<HashSet<[u8; 32]>>,
    cache_key: hmac::Key,
    /// bcrypt verifications run so far.
    bcrypt_runs: AtomicU64,
    /// Checks dropped from the queue because their client had gone.
    cancelled: AtomicU64,
}

/// Checks waiting or running whose requests are still there: the queue's budget. A request
/// that goes away gives its place back at once; its job stays in the channel until the thread
/// skips it, which costs nothing.
#[derive(Default)]
struct Pending {
    total: usize,
    by_client: HashMap<Client, usize>,
}

/// Who a password check is counted against: an IPv4 address or an IPv6 /64 (a single host
/// usually has a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(u32::from(v4)),
                None => Client::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// A place in the queue's budget taken by one request, given back when it has its verdict or
/// is dropped.
struct Slot {
    pending: Arc<Mutex<Pending>>,
    client: Client,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.total -= 1;
        if let Some(n) = pending.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                pending.by_client.remove(&self.client);
            }
        }
    }
}

/// A check for the verification thread.
struct Job {
    credentials: Credentials,
    /// Closed when the request was dropped (its client hung up): the check is skipped.
    reply: tokio::sync::oneshot::Sender<AuthResult>,
}

/// Credentials from a header, not in the cache: bcrypt is to decide.
struct Credentials {
    user: Vec<u8>,
    password: Vec<u8>,
    tag: [u8; 32],
}

enum Precheck {
    Done(AuthResult),
    Verify(Credentials),
}

impl BasicAuth {
    /// The users of `basic_auth_users`, in the file's order: each name without `:`, each hash
    /// a bcrypt hash of cost 4 to 31.
    pub(crate) fn new(users: Vec<(String, String)>) -> Result<BasicAuth, BasicAuthError> {
        let mut checked = Vec::with_capacity(users.len());
        for (user, hash) in users {
            if user.contains(':') {
                return Err(BasicAuthError::ColonInName { user });
            }
            // The hash is never repeated in the message.
            let parts: bcrypt::HashParts = match hash.parse() {
                Ok(parts) => parts,
                Err(e) => {
                    return Err(BasicAuthError::NotBcrypt {
                        user,
                        reason: e.to_string(),
                    });
                }
            };
            if !(4..=31).contains(&parts.get_cost()) {
                return Err(BasicAuthError::Cost {
                    user,
                    cost: parts.get_cost(),
                });
            }
            checked.push(User {
                name: user.into_bytes(),
                hash,
            });
        }
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| BasicAuthError::Random)?;
        Ok(BasicAuth {
            checker: Arc::new(Checker {
                users: checked,
                accepted: Mutex::new(HashSet::new()),
                cache_key,
                bcrypt_runs: AtomicU64::new(0),
                cancelled: AtomicU64::new(0),
            }),
            queue: OnceLock::new(),
            pending: Arc::default(),
        })
    }

    /// The user names, for `Debug`.
    pub(crate) fn user_names(&self) -> Vec<String> {
        self.checker
            .users
            .iter()
            .map(|u| String::from_utf8_lossy(&u.name).into_owned())
            .collect()
    }

    /// Checks a request's `Authorization` header: at once when it is missing, malformed or
    /// already accepted; otherwise on the verification thread, as [`BasicAuth::verify_queued`].
    pub(crate) async fn authorize(
        &self,
        authorization: Option<&HeaderValue>,
        client: IpAddr,
    ) -> AuthResult {
        match self.checker.precheck(authorization) {
            Precheck::Done(result) => result,
            Precheck::Verify(credentials) => self.verify_queued(credentials, client).await,
        }
    }

    /// [`BasicAuth::authorize`] without a runtime: bcrypt on this thread.
    #[cfg(test)]
    pub(crate) fn check_here(&self, authorization: Option<&HeaderValue>) -> AuthResult {
        match self.checker.precheck(authorization) {
            Precheck::Done(result) => result,
            Precheck::Verify(credentials) => self.checker.verify(&credentials),
        }
    }

    /// Waits for the verification thread's verdict on `credentials`, unless too many checks
    /// are waiting already, overall or from `client`.
    async fn verify_queued(&self, credentials: Credentials, client: IpAddr) -> AuthResult {
        let Some(_slot) = self.take_slot(Client::from(client)) else {
            return Some(Denied::BUSY);
        };
        let Some(queue) = self.queue() else {
            return Some(Denied::BUSY);
        };
        let (reply, verdict) = tokio::sync::oneshot::channel();
        if queue.send(Job { credentials, reply }).is_err() {
            return Some(Denied::BUSY);
        }
        // The thread answers every job it does not skip; if it is gone, refuse.
        verdict.await.unwrap_or(Some(Denied::WRONG))
    }

    /// A place for one more check, if fewer than `VERIFY_QUEUE + 1` are pending (the one
    /// running and those waiting), and fewer than [`VERIFY_PER_CLIENT`] from `client`.
    fn take_slot(&self, client: Client) -> Option<Slot> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mine = pending.by_client.get(&client).copied().unwrap_or(0);
        if pending.total > VERIFY_QUEUE || mine >= VERIFY_PER_CLIENT {
            return None;
        }
        pending.total += 1;
        *pending.by_client.entry(client).or_default() += 1;
        Some(Slot {
            pending: Arc::clone(&self.pending),
            client,
        })
    }

    /// The queue of the verification thread, started on first use. The thread ends when the
    /// config (and with it the queue's sender) is dropped.
    fn queue(&self) -> Option<&mpsc::Sender<Job>> {
        self.queue
            .get_or_init(|| {
                let (sender, jobs) = mpsc::channel::<Job>();
                let checker = Arc::clone(&self.checker);
                let started = std::thread::Builder::new()
                    .name("password-checks".to_owned())
                    .spawn(move || {
                        for job in jobs {
                            if job.reply.is_closed() {
                                checker.cancelled.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            let verdict = checker.verify(&job.credentials);
                            let _ = job.reply.send(verdict);
                        }
                    });
                match started {
                    Ok(_) => Some(sender),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the password-check thread; requests needing one are refused");
                        None
                    }
                }
            })
            .as_ref()
    }
}

impl Checker {
    /// Parses the header and looks in the cache: what can be decided without bcrypt.
    fn precheck(&self, authorization: Option<&HeaderValue>) -> Precheck {
        let Some(header) = authorization else {
            return Precheck::Done(Some(Denied::NO_CREDENTIALS));
        };
        let Some((user, password)) = parse_basic(header.as_bytes()) else {
            return Precheck::Done(Some(Denied::MALFORMED));
        };
        let mut context = hmac::Context::with_key(&self.cache_key);
        context.update(&(user.len() as u64).to_be_bytes());
        context.update(&user);
        context.update(&password);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(context.sign().as_ref());
        if self.is_cached(&tag) {
            return Precheck::Done(None);
        }
        Precheck::Verify(Credentials {
            user,
            password,
            tag,
        })
    }

    fn is_cached(&self, tag: &[u8; 32]) -> bool {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(tag)
    }

    /// bcrypt against the user's hash, or, for an unknown user, against another user's (the
    /// same work, so that timing does not tell which users exist), then denied.
    fn verify(&self, credentials: &Credentials) -> AuthResult {
        // Another request may have verified the same credentials while this one waited.
        if self.is_cached(&credentials.tag) {
            return None;
        }
        let user = self.users.iter().find(|u| u.name == credentials.user);
        let hash = user.map_or(&self.users[0].hash, |u| &u.hash);
        self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
        let matches = bcrypt::verify(&credentials.password, hash).unwrap_or(false);
        if user.is_none() || !matches || credentials.password.len() > BCRYPT_MAX_PASSWORD {
            return Some(Denied::WRONG);
        }
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if accepted.len() >= CACHE_CAPACITY {
            accepted.clear();
        }
        accepted.insert(credentials.tag);
        None
    }
}

/// Standard base64 with canonical padding (RFC 4648 §4), as Go's `StdEncoding` decodes it:
/// the unused bits of the last character need not be zero.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// `Basic <base64(user:password)>` → (user, password); `None` when malformed.
fn parse_basic(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, Instant};

    use hyper::StatusCode;
    use hyper::header;

    use crate::test_support::{basic, hash, parse};
    use crate::{ConfigError, DeniedKind, WebConfig};

    fn users_config() -> WebConfig {
        parse(&format!(
            "basic_auth_users:\n  alice: {}\n  bob: '{}'\n",
            hash("wonderland"),
            hash("builder")
        ))
        .unwrap()
    }

    fn runs(config: &WebConfig) -> u64 {
        config
            .auth
            .as_ref()
            .unwrap()
            .checker
            .bcrypt_runs
            .load(Ordering::Relaxed)
    }

    #[test]
    fn bad_hashes_are_refused_without_being_repeated() {
        for (hash, expected) in [
            ("plaintext-password", "not a bcrypt hash"),
            (
                "$1$abcdefgh$abcdefghijklmnopqrstuv0123456789abcdefghijklmnopqrs",
                "not a bcrypt hash",
            ),
            (
                "$2y$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi",
                "cost 3",
            ),
            ("", "not a bcrypt hash"),
        ] {
            let err = parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap_err();
            assert!(
                matches!(
                    &err,
                    ConfigError::BasicAuth(
                        BasicAuthError::NotBcrypt { user, .. } | BasicAuthError::Cost { user, .. }
                    ) if user == "alice"
                ),
                "{err:?}"
            );
            let err = err.to_string();
            assert!(
                err.contains("basic_auth_users: alice") && err.contains(expected),
                "{err}"
            );
            if !hash.is_empty() {
                assert!(!err.contains(hash), "the hash is repeated: {err}");
            }
        }
        let err = parse(&format!("basic_auth_users:\n  'a:b': {}\n", hash("x"))).unwrap_err();
        assert!(err.to_string().contains("cannot contain ':'"), "{err}");
    }

    #[test]
    fn basic_auth_accepts_the_right_credentials_only() {
        let config = users_config();
        assert_eq!(
            config.check_basic_auth(Some(&basic("alice", "wonderland"))),
            None
        );
        assert_eq!(
            config.check_basic_auth(Some(&basic("bob", "builder"))),
            None
        );
        for (user, password) in [
            ("alice", "builder"),
            ("alice", "Wonderland"),
            ("alice", ""),
            ("mallory", "wonderland"),
            ("", "wonderland"),
            ("Alice", "wonderland"),
        ] {
            let denied = config
                .check_basic_auth(Some(&basic(user, password)))
                .unwrap_or_else(|| panic!("{user}:{password} was let in"));
            assert_eq!(denied.reason(), "wrong user name or password");
        }
        // Past bcrypt's 72 bytes: refused, not truncated.
        let long = "x".repeat(80);
        let config = parse(&format!("basic_auth_users:\n  alice: {}\n", hash(&long))).unwrap();
        assert!(
            config
                .check_basic_auth(Some(&basic("alice", &long)))
                .is_some()
        );
        assert!(
            config
                .check_basic_auth(Some(&basic("alice", &format!("{long}yz"))))
                .is_some()
        );
    }

    #[test]
    fn hashes_from_other_tools_verify() {
        // Made by glibc's crypt (libxcrypt) for "scrape-me"; htpasswd writes the same hash with
        // the $2y$ prefix.
        let libxcrypt = "$2b$04$YJYS3K41WZqLqq8AHh0sse9Iq4lCJ1sglI6WChTQH4wM5bjmiLt0C";
        for hash in [libxcrypt.to_owned(), libxcrypt.replacen("$2b$", "$2y$", 1)] {
            let config = parse(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
            assert_eq!(
                config.check_basic_auth(Some(&basic("prometheus", "scrape-me"))),
                None,
                "{hash}"
            );
            assert!(
                config
                    .check_basic_auth(Some(&basic("prometheus", "scrape-you")))
                    .is_some()
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let config = users_config();
        assert_eq!(
            config.check_basic_auth(None).map(|d| d.reason()),
            Some("no basic authentication credentials")
        );
        let no_colon = format!("Basic {}", BASE64.encode(b"alicewonderland"));
        for header in [
            "Bearer abc",
            "Basic",
            "Basic ",
            "Basic !!!!",
            "Basic YWxpY2U6d29uZGVybGFuZA",
            no_colon.as_str(),
            "YWxpY2U6d29uZGVybGFuZA==",
            // Not base64 with canonical padding.
            "Basic YWxpY2U6d29uZGVybGFuZA=",
            "Basic YWxpY2U6d29uZGVybGFuZ===",
            "Basic YWxp=2U6d29uZGVybGFuZA==",
            "Basic YWxp==U6d29uZGVybGFuZA==",
            "Basic YWxpY2U6d29uZGVybGFuZA==YQ==",
        ] {
            let value = HeaderValue::from_str(header).unwrap();
            assert_eq!(
                config.check_basic_auth(Some(&value)).map(|d| d.reason()),
                Some("malformed Authorization header"),
                "{header}"
            );
        }
        let non_utf8 = HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap();
        assert!(config.check_basic_auth(Some(&non_utf8)).is_some());
        // As Go's StdEncoding: the unused bits of the last character may be set.
        let trailing_bits = HeaderValue::from_static("Basic YWxpY2U6d29uZGVybGFuZB==");
        assert_eq!(config.check_basic_auth(Some(&trailing_bits)), None);
        // The scheme is case-insensitive.
        let lower = basic("alice", "wonderland")
            .to_str()
            .unwrap()
            .replace("Basic", "basic");
        assert_eq!(
            config.check_basic_auth(Some(&HeaderValue::from_str(&lower).unwrap())),
            None
        );
    }

    #[test]
    fn accepted_credentials_are_cached_and_refused_ones_are_not() {
        let config = users_config();
        let right = basic("alice", "wonderland");
        assert_eq!(config.check_basic_auth(Some(&right)), None);
        assert_eq!(runs(&config), 1);
        for _ in 0..5 {
            assert_eq!(config.check_basic_auth(Some(&right)), None);
        }
        assert_eq!(runs(&config), 1, "bcrypt ran again for cached credentials");
        let wrong = basic("alice", "nope");
        assert!(config.check_basic_auth(Some(&wrong)).is_some());
        assert!(config.check_basic_auth(Some(&wrong)).is_some());
        assert_eq!(runs(&config), 3, "refusals are not cached");
        // Unknown users cost a bcrypt too (timing does not tell who exists).
        assert!(
            config
                .check_basic_auth(Some(&basic("mallory", "x")))
                .is_some()
        );
        assert_eq!(runs(&config), 4);
        // The cache holds keyed hashes, not the password.
        let auth = config.auth.as_ref().unwrap();
        let cached = auth.checker.accepted.lock().unwrap();
        assert_eq!(cached.len(), 1);
        assert!(
            !cached
                .iter()
                .any(|t| t.windows(10).any(|w| w == b"wonderland"))
        );
    }

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn authorize_runs_bcrypt_off_the_async_workers() {
        let config = users_config();
        let bob = basic("bob", "builder");
        assert_eq!(config.authorize(Some(&bob), LOCALHOST).await, None);
        assert_eq!(config.authorize(Some(&bob), LOCALHOST).await, None);
        assert_eq!(runs(&config), 1);
        let wrong = config.authorize(Some(&basic("bob", "x")), LOCALHOST).await;
        assert_eq!(wrong.map(|d| d.kind()), Some(DeniedKind::Unauthorized));
        assert!(config.authorize(None, LOCALHOST).await.is_some());
        let open = parse("").unwrap();
        assert_eq!(open.authorize(None, LOCALHOST).await, None);
    }

    /// A hash that takes a while to check (cost 10: tens of milliseconds in a release build,
    /// hundreds in a debug build), so that checks pile up behind it.
    fn slow_config() -> WebConfig {
        let slow = bcrypt::hash_with_salt("wonderland", 10, *b"0123456789abcdef")
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        parse(&format!("basic_auth_users:\n  alice: {slow}\n")).unwrap()
    }

    fn client(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// Guesses from many clients: one runs, [`VERIFY_QUEUE`] wait, every other one is refused
    /// at once with a 429; from one client, at most [`VERIFY_PER_CLIENT`] get in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_guesses_is_refused_beyond_the_queue() {
        let config = Arc::new(slow_config());
        let started = Instant::now();
        let guesses: Vec<_> = (0..40u32)
            .map(|i| {
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let header = basic("alice", &format!("guess-{i}"));
                    let verdict = config.authorize(Some(&header), client(i)).await;
                    (verdict.map(|d| d.kind()), started.elapsed())
                })
            })
            .collect();
        let mut busy = Vec::new();
        let mut checked = 0;
        for guess in guesses {
            match guess.await.unwrap() {
                (Some(DeniedKind::Busy), took) => busy.push(took),
                (Some(DeniedKind::Unauthorized), _) => checked += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(checked <= VERIFY_QUEUE + 1, "{checked} checked");
        assert_eq!(busy.len() + checked, 40);
        assert!(busy.len() >= 40 - VERIFY_QUEUE - 1, "{}", busy.len());
        let first_check = Duration::from_millis(100);
        assert!(
            busy.iter().all(|took| *took < first_check),
            "refusals wait for nothing: {busy:?}"
        );
        // One client alone gets at most its share in.
        let config = Arc::new(slow_config());
        let guesses: Vec<_> = (0..6u32)
            .map(|i| {
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let header = basic("alice", &format!("guess-{i}"));
                    config
                        .authorize(Some(&header), client(7))
                        .await
                        .map(|d| d.kind())
                })
            })
            .collect();
        let verdicts = futures::future::join_all(guesses).await;
        let checked = verdicts
            .iter()
            .filter(|v| matches!(v, Ok(Some(DeniedKind::Unauthorized))))
            .count();
        assert_eq!(checked, VERIFY_PER_CLIENT, "{verdicts:?}");
        // An IPv6 /64 is one client.
        assert_eq!(
            Client::from("2001:db8::1".parse::<IpAddr>().unwrap()),
            Client::from("2001:db8::ffff:1".parse::<IpAddr>().unwrap())
        );
        assert_ne!(
            Client::from("2001:db8::1".parse::<IpAddr>().unwrap()),
            Client::from("2001:db8:0:1::1".parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            Client::from("::ffff:10.0.0.7".parse::<IpAddr>().unwrap()),
            Client::from(client(7))
        );
    }

    /// Requests dropped while their check waits (the client hung up) run no bcrypt; the right
    /// password still gets in afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_checks_are_dropped_from_the_queue() {
        let config = Arc::new(slow_config());
        let waiting: Vec<_> = (0..=VERIFY_QUEUE as u32)
            .map(|i| {
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let header = basic("alice", &format!("guess-{i}"));
                    config.authorize(Some(&header), client(i)).await
                })
            })
            .collect();
        let auth = config.auth.as_ref().unwrap();
        while auth.pending.lock().unwrap().total <= VERIFY_QUEUE {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for request in &waiting {
            request.abort();
        }
        // Cancelled once each task has dropped its future (and so given back its place).
        for request in waiting {
            let _ = request.await;
        }
        let right = basic("alice", "wonderland");
        assert_eq!(config.authorize(Some(&right), client(99)).await, None);
        let (runs, cancelled) = (
            auth.checker.bcrypt_runs.load(Ordering::Relaxed),
            auth.checker.cancelled.load(Ordering::Relaxed),
        );
        // The one running when they were dropped, then the right password.
        assert!(runs <= 2, "{runs} bcrypt runs");
        assert!(
            cancelled >= VERIFY_QUEUE as u64 - 1,
            "{cancelled} cancelled"
        );
        let pending = auth.pending.lock().unwrap();
        assert!(
            pending.total == 0 && pending.by_client.is_empty(),
            "slots given back"
        );
    }

    #[test]
    fn the_401_asks_for_basic_credentials() {
        let config = users_config();
        let denied = config.check_basic_auth(None).unwrap();
        let response = denied.response(|text| text);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
    }
}
