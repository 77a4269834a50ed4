//! OIDC bearer tokens (JWT) from one configured issuer, e.g. Keycloak:
//! signature against the issuer's JWKS (fetched, cached, refreshed when an
//! unknown key id appears), issuer, audience, expiry with clock skew. A claim
//! (default `sub`) names the principal.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use tokio::sync::RwLock;

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
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the token is not a valid JWT: {0}")]
    Malformed(String),
    #[error("the token is signed with {0:?}; only asymmetric algorithms (RS*, PS*, ES*) are accepted")]
    Algorithm(Algorithm),
    #[error("the issuer's keys could not be fetched: {0}")]
    Jwks(String),
    #[error("the token's key id {0:?} is not among the issuer's keys")]
    UnknownKey(Option<String>),
    #[error("the token was rejected: {0}")]
    Invalid(String),
    #[error("the token has no string claim {0:?}")]
    MissingClaim(String),
}

pub struct Oidc {
    args: OidcArgs,
    issuer: String,
    http: reqwest::Client,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

const MIN_REFRESH: Duration = Duration::from_secs(10);

impl Oidc {
    pub fn new(args: &OidcArgs) -> Option<Self> {
        let issuer = args.issuer.clone()?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok()?;
        Some(Self { args: args.clone(), issuer, http, keys: RwLock::new(None) })
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

    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, OidcError> {
        let find = |set: &JwkSet| -> Option<Result<DecodingKey, OidcError>> {
            let jwk = match kid {
                Some(kid) => set.find(kid)?,
                None if set.keys.len() == 1 => &set.keys[0],
                None => return None,
            };
            Some(DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Jwks(e.to_string())))
        };
        let stale = {
            let cached = self.keys.read().await;
            if let Some(found) = cached.as_ref().and_then(|(set, _)| find(set)) {
                return found;
            }
            cached.as_ref().is_none_or(|(_, at)| at.elapsed() > MIN_REFRESH)
        };
        if stale {
            let set = self.fetch().await?;
            let found = find(&set);
            *self.keys.write().await = Some((set, Instant::now()));
            if let Some(found) = found {
                return found;
            }
        }
        Err(OidcError::UnknownKey(kid.map(str::to_owned)))
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
        let data =
            decode::<serde_json::Value>(token, &key, &validation).map_err(|e| OidcError::Invalid(e.to_string()))?;
        data.claims
            .get(&self.args.subject_claim)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| OidcError::MissingClaim(self.args.subject_claim.clone()))
    }
}
