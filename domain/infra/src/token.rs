//! Bearer tokens: HS256 JWTs carrying the user id and roles, issued by the command API
//! and verified by both APIs with the shared `TALLY_JWT_SECRET`.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use domain::Role;

/// Who issues Tally's tokens, and for whom: pinned on verification, so a token of
/// another system signed with a shared secret is refused.
pub const ISSUER: &str = "tally";
pub const AUDIENCE: &str = "tally-api";

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub roles: Vec<Role>,
    pub exp: i64,
    pub iat: i64,
    /// Not valid before (the issue time).
    pub nbf: i64,
    pub iss: String,
    pub aud: String,
}

impl Claims {
    /// Whether the token may be used at `now` (unix seconds).
    fn current(&self, now: i64) -> bool {
        self.nbf <= now && now < self.exp
    }
}

impl Claims {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub ttl: Duration,
    /// Tells this key set's entries apart in the per-thread cache of verified tokens.
    id: u64,
}

/// Verified tokens kept per thread before the cache is cleared.
const VERIFIED_CAPACITY: usize = 4096;

thread_local! {
    /// Tokens this thread has verified, by key set: a repeat request skips the HMAC and
    /// JSON work. Only successes are kept, and expiry is checked on every use.
    static VERIFIED: std::cell::RefCell<std::collections::HashMap<String, (u64, Claims)>> =
        std::cell::RefCell::default();
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TokenKeys {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl,
            id: rand_id(),
        }
    }

    /// A token for `user` valid from `now` for the configured lifetime.
    pub fn issue(&self, user: Uuid, roles: Vec<Role>, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let expires_at = now + self.ttl;
        let claims = Claims {
            sub: user,
            roles,
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        // HS256 signing of a serializable struct cannot fail.
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default();
        (token, expires_at)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let cached =
            VERIFIED.with(|v| v.borrow().get(token).filter(|(id, _)| *id == self.id).map(|(_, c)| c.clone()));
        if let Some(claims) = cached {
            let now = Utc::now().timestamp();
            return if claims.current(now) {
                Ok(claims)
            } else if claims.exp <= now {
                Err(TokenError::Expired)
            } else {
                Err(TokenError::Invalid)
            };
        }
        let claims = self.verify_signature(token)?;
        VERIFIED.with(|v| {
            let mut v = v.borrow_mut();
            if v.len() >= VERIFIED_CAPACITY {
                v.clear();
            }
            v.insert(token.to_owned(), (self.id, claims.clone()));
        });
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        decode::<Claims>(token, &self.decoding, &validation).map(|d| d.claims).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })
    }
}

fn rand_id() -> u64 {
    let bytes = *Uuid::new_v4().as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_its_secret_and_not_another() {
        let keys = TokenKeys::new("s1", Duration::hours(1));
        let user = Uuid::new_v4();
        let (t, _) = keys.issue(user, vec![Role::Customer], Utc::now());
        assert_eq!(keys.verify(&t).map(|c| c.sub), Ok(user));
        let other = TokenKeys::new("s2", Duration::hours(1));
        assert_eq!(other.verify(&t), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_cached_by_one_key_set_is_not_accepted_by_another() {
        let keys = TokenKeys::new("s1", Duration::hours(1));
        let (t, _) = keys.issue(Uuid::new_v4(), vec![Role::Customer], Utc::now());
        assert!(keys.verify(&t).is_ok());
        assert!(keys.verify(&t).is_ok(), "from the cache");
        assert_eq!(TokenKeys::new("s2", Duration::hours(1)).verify(&t), Err(TokenError::Invalid));
        assert!(TokenKeys::new("s1", Duration::hours(1)).verify(&t).is_ok(), "same secret, new set");
    }

    #[test]
    fn an_expired_token_is_rejected_as_expired() {
        let keys = TokenKeys::new("s1", Duration::seconds(10));
        let (t, _) = keys.issue(Uuid::new_v4(), vec![Role::Admin], Utc::now() - Duration::hours(1));
        assert_eq!(keys.verify(&t), Err(TokenError::Expired));
    }

    /// A token signed with the right secret but claims of the caller's choosing.
    fn forged(secret: &str, claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(secret.as_bytes());
        encode(&Header::new(Algorithm::HS256), &claims, &key).expect("encode")
    }

    #[test]
    fn tokens_not_yet_valid_or_for_another_issuer_or_audience_are_refused() {
        let keys = TokenKeys::new("s1", Duration::hours(1));
        let now = Utc::now().timestamp();
        let claims = |nbf: i64, iss: &str, aud: &str| {
            serde_json::json!({ "sub": Uuid::new_v4(), "roles": ["admin"], "exp": now + 600, "iat": now,
                                "nbf": nbf, "iss": iss, "aud": aud })
        };
        assert!(keys.verify(&forged("s1", claims(now, ISSUER, AUDIENCE))).is_ok());
        for bad in [
            claims(now + 300, ISSUER, AUDIENCE),
            claims(now, "someone-else", AUDIENCE),
            claims(now, ISSUER, "another-api"),
            serde_json::json!({ "sub": Uuid::new_v4(), "roles": ["admin"], "exp": now + 600, "iat": now }),
        ] {
            assert_eq!(keys.verify(&forged("s1", bad.clone())), Err(TokenError::Invalid), "{bad}");
        }
    }
}
