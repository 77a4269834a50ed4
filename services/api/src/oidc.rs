//! OIDC bearer tokens (JWT) from one configured issuer, e.g. Keycloak:
//! signature against the issuer's JWKS, issuer, audience, expiry and
//! not-before with clock skew, and optionally the client the token was issued
//! to. A claim (default `sub`) names the principal.
//!
//! The JWKS is fetched and cached. A token with a key id not in the cache (the
//! issuer rotated its keys) makes the API fetch the JWKS again at once, so a
//! rotation needs no restart, and so does a cached set older than
//! `--oidc-jwks-max-age-secs`; fetches draw on a small budget
//! ([`FetchBudget`]) so that tokens with made-up key ids cannot make the API
//! hammer the issuer. A fetched set replaces the cached one: a key the issuer
//! no longer publishes is refused from then on. While the issuer cannot be
//! reached, the keys already known stay in use.

use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use tokio::sync::{Mutex, RwLock};

/// OIDC settings of the API.
#[derive(Debug, Clone, clap::Args)]
pub struct OidcArgs {
    /// Issuer URL of accepted tokens (e.g. https://login.example.de/realms/stadt); unset: no JWTs.
    #[arg(long = "oidc-issuer", env = "HOHEIT_OIDC_ISSUER")]
    pub issuer: Option<String>,
    /// Required audience (`aud`) of tokens.
    #[arg(long = "oidc-audience", env = "HOHEIT_OIDC_AUDIENCE", default_value = "hoheit")]
    pub audience: String,
    /// JWKS URL; default: the issuer's discovery document's `jwks_uri`.
    #[arg(long = "oidc-jwks-url", env = "HOHEIT_OIDC_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Claim that holds the principal's OIDC subject.
    #[arg(long = "oidc-subject-claim", env = "HOHEIT_OIDC_SUBJECT_CLAIM", default_value = "sub")]
    pub subject_claim: String,
    /// Allowed clock skew in seconds.
    #[arg(long = "oidc-leeway-secs", env = "HOHEIT_OIDC_LEEWAY_SECS", default_value_t = 60)]
    pub leeway_secs: u64,
    /// Clients whose tokens are accepted (comma-separated client ids, matched against the token's
    /// `client_id` (RFC 9068) or else `azp` (OIDC)); empty: tokens of any client of the issuer
    /// with the right audience. Include the dashboard's client id.
    #[arg(long = "oidc-client-ids", env = "HOHEIT_OIDC_CLIENT_IDS", value_delimiter = ',')]
    pub client_ids: Vec<String>,
    /// Seconds after which the cached JWKS is fetched again on the next token, so that a key the
    /// issuer withdrew (e.g. compromised) is refused within this time.
    #[arg(long = "oidc-jwks-max-age-secs", env = "HOHEIT_OIDC_JWKS_MAX_AGE_SECS", default_value_t = 600)]
    pub jwks_max_age_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the token is not a valid JWT: {0}")]
    Malformed(String),
    #[error("the token is signed with {0:?}; only asymmetric algorithms (RS*, PS*, ES*) are accepted")]
    Algorithm(Algorithm),
    #[error("the issuer's keys could not be fetched: {0}")]
    Jwks(String),
    #[error("the token's key id ({0}) is not among the issuer's keys")]
    UnknownKey(String),
    #[error("the token was rejected: {0}")]
    Invalid(String),
    #[error("the token has no string claim {0:?}")]
    MissingClaim(String),
    #[error("the token was issued to client {0:?}, which is not among the clients accepted (HOHEIT_OIDC_CLIENT_IDS)")]
    Client(String),
    #[error("the token names no client (`client_id` or `azp`), but only tokens of the accepted clients (HOHEIT_OIDC_CLIENT_IDS) are")]
    NoClient,
}

/// Fetches of the JWKS for an unknown key id: up to [`FetchBudget::BURST`] at
/// once, then one per [`FetchBudget::REFILL`].
#[derive(Debug)]
struct FetchBudget {
    available: u32,
    since: Instant,
}

impl FetchBudget {
    const BURST: u32 = 3;
    const REFILL: Duration = Duration::from_secs(10);

    fn new(now: Instant) -> Self {
        Self { available: Self::BURST, since: now }
    }

    /// Takes one fetch if the budget allows it at `now`.
    fn take(&mut self, now: Instant) -> bool {
        let earned = (now.saturating_duration_since(self.since).as_secs() / Self::REFILL.as_secs()) as u32;
        if earned > 0 {
            self.available = (self.available + earned).min(Self::BURST);
            self.since += Self::REFILL * earned;
        }
        if self.available == 0 {
            return false;
        }
        self.available -= 1;
        true
    }
}

pub struct Oidc {
    args: OidcArgs,
    issuer: String,
    http: reqwest::Client,
    keys: RwLock<Option<(JwkSet, Instant)>>,
    /// Held while fetching: concurrent requests with the same new key id wait for one fetch.
    budget: Mutex<FetchBudget>,
}

impl Oidc {
    pub fn new(args: &OidcArgs) -> Option<Self> {
        let issuer = args.issuer.clone()?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok()?;
        Some(Self {
            args: args.clone(),
            issuer,
            http,
            keys: RwLock::new(None),
            budget: Mutex::new(FetchBudget::new(Instant::now())),
        })
    }

    async fn fetch(&self) -> Result<JwkSet, OidcError> {
        let jwks_url = match &self.args.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
                let document: serde_json::Value = self
                    .http
                    .get(&discovery)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| OidcError::Jwks(e.to_string()))?
                    .json()
                    .await
                    .map_err(|e| OidcError::Jwks(e.to_string()))?;
                document["jwks_uri"]
                    .as_str()
                    .ok_or_else(|| OidcError::Jwks("discovery has no jwks_uri".into()))?
                    .to_owned()
            }
        };
        self.http
            .get(&jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| OidcError::Jwks(e.to_string()))?
            .json::<JwkSet>()
            .await
            .map_err(|e| OidcError::Jwks(e.to_string()))
    }

    /// The cached key for `kid`, if any, and whether the cached set is younger than the maximum age.
    async fn cached(&self, kid: Option<&str>) -> (Option<Result<DecodingKey, OidcError>>, bool) {
        let keys = self.keys.read().await;
        let Some((set, fetched)) = keys.as_ref() else {
            return (None, false);
        };
        let fresh = fetched.elapsed() <= Duration::from_secs(self.args.jwks_max_age_secs);
        let jwk = match kid {
            Some(kid) => set.find(kid),
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        };
        (jwk.map(|jwk| DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Jwks(e.to_string()))), fresh)
    }

    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, OidcError> {
        let unknown = || OidcError::UnknownKey(kid.unwrap_or("none").to_owned());
        if let (Some(found), true) = self.cached(kid).await {
            return found;
        }
        let mut budget = self.budget.lock().await;
        // Another request may have fetched the set while this one waited.
        let found = match self.cached(kid).await {
            (Some(found), true) => return found,
            (found, _) => found,
        };
        if !budget.take(Instant::now()) {
            // Out of budget: an old set still serves until the next fetch.
            return found.unwrap_or_else(|| Err(unknown()));
        }
        match self.fetch().await {
            Ok(set) => *self.keys.write().await = Some((set, Instant::now())),
            // The issuer is unreachable: keys already known stay in use.
            Err(error) => return found.unwrap_or(Err(error)),
        }
        drop(budget);
        self.cached(kid).await.0.unwrap_or_else(|| Err(unknown()))
    }

    /// Validates `token` and returns the configured subject claim.
    pub async fn subject(&self, token: &str) -> Result<String, OidcError> {
        let header = decode_header(token).map_err(|e| OidcError::Malformed(e.to_string()))?;
        if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(OidcError::Algorithm(header.alg));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.args.audience]);
        validation.leeway = self.args.leeway_secs;
        validation.validate_nbf = true;
        let data = decode::<serde_json::Value>(token, &key, &validation).map_err(|e| self.reason(e))?;
        self.check_client(&data.claims)?;
        data.claims
            .get(&self.args.subject_claim)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| OidcError::MissingClaim(self.args.subject_claim.clone()))
    }

    fn check_client(&self, claims: &serde_json::Value) -> Result<(), OidcError> {
        if self.args.client_ids.is_empty() {
            return Ok(());
        }
        let client = ["client_id", "azp"].iter().find_map(|claim| claims.get(claim).and_then(|v| v.as_str()));
        match client {
            Some(client) if self.args.client_ids.iter().any(|c| c == client) => Ok(()),
            Some(client) => Err(OidcError::Client(client.to_owned())),
            None => Err(OidcError::NoClient),
        }
    }

    /// A reason a person can act on for a token that failed validation.
    fn reason(&self, error: jsonwebtoken::errors::Error) -> OidcError {
        OidcError::Invalid(match error.kind() {
            ErrorKind::ExpiredSignature => "it has expired (`exp`)".to_owned(),
            ErrorKind::ImmatureSignature => "it is not valid yet (`nbf`)".to_owned(),
            ErrorKind::InvalidAudience => format!("its audience (`aud`) is not {:?}", self.args.audience),
            ErrorKind::InvalidIssuer => format!("its issuer (`iss`) is not {:?}", self.issuer),
            ErrorKind::InvalidSignature => "its signature does not verify with the issuer's key".to_owned(),
            ErrorKind::MissingRequiredClaim(claim) => format!("it has no `{claim}` claim"),
            _ => error.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_for_unknown_keys_are_bounded_and_earned_back_over_time() {
        let start = Instant::now();
        let mut budget = FetchBudget::new(start);
        for _ in 0..FetchBudget::BURST {
            assert!(budget.take(start));
        }
        assert!(!budget.take(start), "a burst of made-up key ids exhausts the budget");
        assert!(!budget.take(start + FetchBudget::REFILL - Duration::from_millis(1)));
        assert!(budget.take(start + FetchBudget::REFILL), "one fetch per interval after the burst");
        assert!(!budget.take(start + FetchBudget::REFILL));
        let later = start + FetchBudget::REFILL * 100;
        for _ in 0..FetchBudget::BURST {
            assert!(budget.take(later));
        }
        assert!(!budget.take(later), "a long quiet time earns no more than the burst");
    }
}
