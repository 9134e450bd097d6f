//! Browser-style sessions of `/web/session/authenticate`, keyed by the
//! `session_id` cookie.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use rand::RngExt;

pub const SESSION_COOKIE: &str = "session_id";
/// Odoo keeps sessions for a week.
pub const SESSION_LIFETIME_SECONDS: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub uid: i64,
    pub login: String,
    pub database: String,
}

#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Session>>,
}

impl SessionStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session and returns its id (40 hex characters, like Odoo's).
    pub fn open(&self, session: Session) -> String {
        let id = random_hex::<20>();
        self.lock().insert(id.clone(), session);
        id
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        self.lock().get(id).cloned()
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The session named by the request's cookie, if it is open.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = session_cookie(headers)?;
        let session = self.get(&id)?;
        Some((id, session))
    }
}

/// Random bytes as lower-case hex; used for session ids and tokens.
pub fn random_hex<const N: usize>() -> String {
    let bytes: [u8; N] = rand::rng().random();
    hex::encode(bytes)
}

/// The `session_id` value among the request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// `Set-Cookie` value for a new session (17+ adds `SameSite=Lax`).
pub fn set_cookie_value(id: &str, same_site: bool) -> String {
    let mut cookie =
        format!("{SESSION_COOKIE}={id}; Max-Age={SESSION_LIFETIME_SECONDS}; HttpOnly; Path=/");
    if same_site {
        cookie.push_str("; SameSite=Lax");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn open_get_close() {
        let store = SessionStore::default();
        let session = Session {
            uid: 2,
            login: "admin".into(),
            database: "planops".into(),
        };
        let id = store.open(session.clone());
        assert_eq!(id.len(), 40);
        assert_eq!(store.get(&id), Some(session));
        store.close(&id);
        assert_eq!(store.get(&id), None);
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("tz=Europe/Brussels; session_id=abc123"),
        );
        headers.append(COOKIE, HeaderValue::from_static("other=1"));
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc123"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn cookie_attributes() {
        assert_eq!(
            set_cookie_value("x", true),
            "session_id=x; Max-Age=604800; HttpOnly; Path=/; SameSite=Lax"
        );
        assert!(!set_cookie_value("x", false).contains("SameSite"));
    }
}
