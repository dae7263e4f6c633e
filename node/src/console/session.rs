//! Sign-in sessions and CSRF tokens, kept in the node's memory.
//!
//! - A session is a random id (32 bytes from the OS, hex) in the `mingchu_session` cookie
//!   (`Secure` over HTTPS, `HttpOnly`, `SameSite=Strict`, `Path=/`), naming an account of this node
//!   and the session's CSRF token. It ends after [`IDLE_MS`] without a request or [`ABSOLUTE_MS`]
//!   after sign-in, whichever comes first, by the node's clock, and at sign-out.
//! - Sessions live only in memory: a restart of the node signs everyone out (nothing to steal
//!   from the disk, nothing to migrate).
//! - The sign-in form, before any session, carries a double-submit token: the same random value
//!   in the `mingchu_sign_in` cookie and in the form's hidden `csrf` field.
//! - Failed sign-ins per source address ([`ADDR_FAILURES_MAX`] in [`ADDR_WINDOW_MS`]) are counted
//!   here too, beside the per-account throttle of the accounts API.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use argon2::password_hash::rand_core::{OsRng, RngCore};

/// The CSRF token of the request's session: every state-changing form carries it in a hidden
/// `csrf` field, and the session layer refuses a POST whose field does not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csrf(pub String);

/// The session cookie.
pub const SESSION_COOKIE: &str = "mingchu_session";
/// The sign-in form's double-submit cookie (before there is a session).
pub const SIGN_IN_COOKIE: &str = "mingchu_sign_in";
/// A session ends after this long without a request (30 min).
pub const IDLE_MS: u64 = 30 * 60_000;
/// A session ends this long after sign-in whatever happens (12 h).
pub const ABSOLUTE_MS: u64 = 12 * 60 * 60_000;
/// Sessions held at most; past it the one idle longest is ended (memory stays bounded).
pub const SESSIONS_MAX: usize = 20_000;
/// Failed sign-ins from one address within [`ADDR_WINDOW_MS`] before it is refused for the rest of
/// the window.
pub const ADDR_FAILURES_MAX: usize = 20;
/// The per-address throttle's window (15 min).
pub const ADDR_WINDOW_MS: u64 = 15 * 60_000;
/// Addresses remembered at most by the throttle.
const ADDRS_MAX: usize = 20_000;

/// One signed-in session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub account: String,
    pub csrf: String,
    pub created_ms: u64,
    pub last_seen_ms: u64,
}

/// What a session id names now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Live(Session),
    /// It existed and timed out (and is gone now).
    Expired,
    /// Never issued, signed out, or issued before the node restarted.
    Unknown,
}

/// The node's sessions and the per-address sign-in throttle. Shared (`Arc`) by every console
/// request; a restart starts empty.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, Vec<u64>>>,
}

impl Sessions {
    /// Starts a session for `account`: a fresh id and CSRF token.
    pub fn create(&self, account: &str, now_ms: u64) -> (String, Session) {
        let id = random_token();
        let session =
            Session { account: account.to_string(), csrf: random_token(), created_ms: now_ms, last_seen_ms: now_ms };
        let mut live = lock(&self.live);
        if live.len() >= SESSIONS_MAX {
            live.retain(|_, s| !expired(s, now_ms));
            if live.len() >= SESSIONS_MAX
                && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.last_seen_ms).map(|(k, _)| k.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The session `id` names, marking it used now; an expired one is removed.
    pub fn touch(&self, id: &str, now_ms: u64) -> Lookup {
        let mut live = lock(&self.live);
        let Some(s) = live.get_mut(id) else { return Lookup::Unknown };
        if expired(s, now_ms) {
            live.remove(id);
            return Lookup::Expired;
        }
        s.last_seen_ms = s.last_seen_ms.max(now_ms);
        Lookup::Live(s.clone())
    }

    /// Ends session `id` (sign-out); the session it was, if any.
    pub fn end(&self, id: &str) -> Option<Session> {
        lock(&self.live).remove(id)
    }

    /// Ends every session of `account` but `keep`; how many ended.
    pub fn end_account(&self, account: &str, keep: Option<&str>) -> usize {
        let mut live = lock(&self.live);
        let before = live.len();
        live.retain(|id, s| s.account != account || Some(id.as_str()) == keep);
        before - live.len()
    }

    /// Live sessions of `account` (for tests and status).
    pub fn count_of(&self, account: &str) -> usize {
        lock(&self.live).values().filter(|s| s.account == account).count()
    }

    /// The failures from `addr` within the window, oldest first (pruned as a side effect).
    pub fn address_failures(&self, addr: IpAddr, now_ms: u64) -> Vec<u64> {
        let mut f = lock(&self.failures);
        let Some(times) = f.get_mut(&addr) else { return Vec::new() };
        times.retain(|t| now_ms.saturating_sub(*t) < ADDR_WINDOW_MS);
        let out = times.clone();
        if out.is_empty() {
            f.remove(&addr);
        }
        out
    }

    /// Counts a failed sign-in from `addr`.
    pub fn record_address_failure(&self, addr: IpAddr, now_ms: u64) {
        let mut f = lock(&self.failures);
        if f.len() >= ADDRS_MAX && !f.contains_key(&addr) {
            f.retain(|_, times| times.last().is_some_and(|t| now_ms.saturating_sub(*t) < ADDR_WINDOW_MS));
            if f.len() >= ADDRS_MAX
                && let Some(oldest) = f.iter().min_by_key(|(_, t)| t.last().copied()).map(|(a, _)| *a)
            {
                f.remove(&oldest);
            }
        }
        let times = f.entry(addr).or_default();
        times.retain(|t| now_ms.saturating_sub(*t) < ADDR_WINDOW_MS);
        times.push(now_ms);
    }

    /// Minutes until `addr` may try again, if it is throttled now.
    pub fn address_throttled(&self, addr: IpAddr, now_ms: u64) -> Option<u64> {
        let recent = self.address_failures(addr, now_ms);
        (recent.len() >= ADDR_FAILURES_MAX)
            .then(|| (recent[0] + ADDR_WINDOW_MS).saturating_sub(now_ms).div_ceil(60_000).max(1))
    }
}

fn expired(s: &Session, now_ms: u64) -> bool {
    now_ms.saturating_sub(s.last_seen_ms) >= IDLE_MS || now_ms.saturating_sub(s.created_ms) >= ABSOLUTE_MS
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// 32 random bytes from the OS, as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` looks like a [`random_token`] (so a cookie of any other shape is ignored).
pub fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Strict`, `Secure` over HTTPS, for `path`; with
/// `max_age_s` = 0 it deletes the cookie, with `None` it lasts until the browser closes.
pub fn set_cookie(name: &str, value: &str, path: &str, secure: bool, max_age_s: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age_s {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_at_their_absolute_end() {
        let s = Sessions::default();
        let (id, first) = s.create("li.na", 1_000);
        assert!(is_token(&id) && is_token(&first.csrf) && id != first.csrf);
        assert_eq!(s.touch(&id, 1_000 + IDLE_MS - 1), Lookup::Live(Session { last_seen_ms: IDLE_MS + 999, ..first }));
        assert_eq!(s.touch(&id, 1_000 + 2 * IDLE_MS), Lookup::Expired);
        assert_eq!(s.touch(&id, 1_000 + 2 * IDLE_MS), Lookup::Unknown, "an expired session is gone");

        // Used every 20 minutes it still ends 12 hours after sign-in.
        let (id, _) = s.create("li.na", 0);
        let mut t = 0;
        while t + 20 * 60_000 < ABSOLUTE_MS {
            t += 20 * 60_000;
            assert!(matches!(s.touch(&id, t), Lookup::Live(_)), "at {t}");
        }
        assert_eq!(s.touch(&id, ABSOLUTE_MS), Lookup::Expired);
        assert_eq!(s.touch("not a session", 0), Lookup::Unknown);
    }

    #[test]
    fn ending_an_accounts_sessions_keeps_the_one_asked_for() {
        let s = Sessions::default();
        let (a, _) = s.create("li.na", 0);
        let (b, _) = s.create("li.na", 0);
        let (c, _) = s.create("wang", 0);
        assert_eq!(s.end_account("li.na", Some(&a)), 1);
        assert!(matches!(s.touch(&a, 1), Lookup::Live(_)));
        assert_eq!(s.touch(&b, 1), Lookup::Unknown);
        assert!(s.end(&c).is_some() && s.end(&c).is_none());
        assert_eq!((s.count_of("li.na"), s.count_of("wang")), (1, 0));
    }

    #[test]
    fn an_address_is_throttled_after_its_failures_until_the_window_passes() {
        let s = Sessions::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for i in 0..ADDR_FAILURES_MAX as u64 {
            assert_eq!(s.address_throttled(a, i), None);
            s.record_address_failure(a, i * 1_000);
        }
        assert_eq!(s.address_throttled(a, 20_000), Some(15));
        assert_eq!(s.address_throttled(b, 20_000), None, "another address is not");
        assert_eq!(s.address_throttled(a, ADDR_WINDOW_MS + 10_000), None, "the oldest failures left the window");
    }

    #[test]
    fn tokens_and_cookies() {
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("abc", "abcd"));
        assert!(!is_token("ABC") && !is_token(&"g".repeat(64)));
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; mingchu_session=xyz".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "mingchu"), None);
        assert_eq!(
            set_cookie(SESSION_COOKIE, "v", "/", true, None),
            "mingchu_session=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            set_cookie("x", "", "/sign-in", false, Some(0)),
            "x=; Path=/sign-in; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }
}
