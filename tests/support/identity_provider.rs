//! An independent identity provider for the OIDC tests: oidc-provider
//! (OpenID Certified) run by `tests/oidc-provider/provider.mjs` on loopback,
//! and a client of it that signs in the way a browser would, through the
//! provider's own login and consent pages, with authorization code + PKCE.
//!
//! Needs `npm ci` in `tests/oidc-provider` (`deploy/local/hoheit tools` does).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::repo;

/// The audience (`aud`) of the provider's access tokens for the API.
pub const AUDIENCE: &str = "hoheit";
/// The API as a resource server of the provider (RFC 8707), the default resource of every client.
pub const RESOURCE: &str = "urn:hoheit:api";
/// Another API of the same provider: its tokens have another audience.
pub const OTHER_RESOURCE: &str = "urn:stadt:parking-api";

/// A client registered at the provider.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    /// None: a public client (no secret, like the dashboard in the browser).
    pub secret: Option<String>,
    pub redirect_uri: String,
    /// RS256 or ES256: how the provider signs this client's access tokens.
    pub access_token_alg: &'static str,
    pub access_token_ttl_secs: u64,
}

impl Client {
    /// A confidential client (secret, `client_secret_basic`) with a redirect URI nobody listens on:
    /// [`IdentityProvider::sign_in`] reads the code from the redirect.
    pub fn confidential(id: &str, access_token_alg: &'static str) -> Self {
        Self {
            id: id.to_owned(),
            secret: Some(format!("{id}-secret-of-at-least-32-characters")),
            redirect_uri: format!("http://127.0.0.1:9/{id}/callback"),
            access_token_alg,
            access_token_ttl_secs: 300,
        }
    }

    /// A public client (no secret; PKCE only), e.g. a single-page app at `redirect_uri`.
    pub fn public(id: &str, redirect_uri: &str) -> Self {
        Self {
            id: id.to_owned(),
            secret: None,
            redirect_uri: redirect_uri.to_owned(),
            access_token_alg: "ES256",
            access_token_ttl_secs: 300,
        }
    }

    pub fn with_ttl(mut self, secs: u64) -> Self {
        self.access_token_ttl_secs = secs;
        self
    }

    fn metadata(&self) -> Value {
        let mut client = json!({
            "client_id": self.id, "redirect_uris": [self.redirect_uri], "grant_types": ["authorization_code"],
            "response_types": ["code"], "access_token_alg": self.access_token_alg,
            "access_token_ttl": self.access_token_ttl_secs,
        });
        match &self.secret {
            Some(secret) => client["client_secret"] = json!(secret),
            None => client["token_endpoint_auth_method"] = json!("none"),
        }
        client
    }
}

/// A private signing key of the provider, as it printed it at start.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub pem: String,
}

/// Tokens from the provider's token endpoint.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub id_token: String,
}

/// The running provider; killed when dropped.
pub struct IdentityProvider {
    pub issuer: String,
    pub keys: Vec<SigningKey>,
    port: u16,
    clients: Vec<Client>,
    child: tokio::process::Child,
    jwks_requests: Arc<AtomicUsize>,
}

fn program() -> std::path::PathBuf {
    let dir = repo().join("tests/oidc-provider");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "oidc-provider is not installed: run `deploy/local/hoheit tools` (or `npm ci` in {})",
        dir.display()
    );
    dir.join("provider.mjs")
}

impl IdentityProvider {
    /// Starts the provider on a loopback port of its choosing.
    pub async fn start(clients: &[Client]) -> anyhow::Result<Self> {
        Self::spawn(0, clients.to_vec(), Arc::new(AtomicUsize::new(0))).await
    }

    /// Starts the provider on `port` (reserved by the caller, e.g. because the API must know the
    /// issuer before the provider knows the dashboard's redirect URI).
    pub async fn start_on(port: u16, clients: &[Client]) -> anyhow::Result<Self> {
        Self::spawn(port, clients.to_vec(), Arc::new(AtomicUsize::new(0))).await
    }

    async fn spawn(port: u16, clients: Vec<Client>, jwks_requests: Arc<AtomicUsize>) -> anyhow::Result<Self> {
        let settings = json!({
            "port": port,
            "resources": [
                {"indicator": RESOURCE, "audience": AUDIENCE, "scope": "hoheit:read"},
                {"indicator": OTHER_RESOURCE, "audience": "parking", "scope": "parking:read"},
            ],
            "clients": clients.iter().map(Client::metadata).collect::<Vec<_>>(),
        });
        let mut child = tokio::process::Command::new("node")
            .arg(program())
            .arg(settings.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("running node (Debian's nodejs; `deploy/local/hoheit tools` installs it)")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("the identity provider did not start within 60 s")??
            .context("the identity provider exited before it was ready (its errors are above)")?;
        let ready: Value =
            serde_json::from_str(&first).with_context(|| format!("the provider's first line: {first}"))?;
        let issuer = ready["issuer"].as_str().context("no issuer")?.to_owned();
        let keys = ready["keys"]
            .as_array()
            .context("no keys")?
            .iter()
            .map(|k| SigningKey {
                kid: k["kid"].as_str().unwrap_or_default().to_owned(),
                alg: k["alg"].as_str().unwrap_or_default().to_owned(),
                pem: k["pem"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        let port = issuer.rsplit(':').next().and_then(|p| p.parse().ok()).context("issuer without port")?;
        let counter = jwks_requests.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "jwks requested" {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Ok(Self { issuer, keys, port, clients, child, jwks_requests })
    }

    /// Key rotation: stops the provider and starts it again on the same port (same issuer) with
    /// newly generated keys (new key ids); the old keys are no longer published.
    pub async fn rotate_keys(self) -> anyhow::Result<Self> {
        let (port, clients, jwks_requests) = (self.port, self.clients.clone(), self.jwks_requests.clone());
        self.stop().await?;
        Self::spawn(port, clients, jwks_requests).await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// How often the JWKS was requested, across rotations.
    pub fn jwks_requests(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }

    pub fn client(&self, id: &str) -> &Client {
        self.clients.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no client {id}"))
    }

    /// The provider's discovery document, checked to name this issuer.
    pub async fn discovery(&self) -> anyhow::Result<Value> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let document: Value = reqwest::get(&url).await?.error_for_status()?.json().await?;
        ensure!(document["issuer"] == self.issuer.as_str(), "discovery names another issuer: {document}");
        Ok(document)
    }

    /// Signs `login` in through `client` as a browser would: authorization request with PKCE
    /// (endpoints from discovery), the provider's login page (any login name becomes the `sub`)
    /// and consent page, the code from the redirect, the token request with the verifier.
    /// `resource`: another API than the default one (RFC 8707).
    pub async fn sign_in(&self, client_id: &str, login: &str, resource: Option<&str>) -> anyhow::Result<Tokens> {
        let client = self.client(client_id);
        let discovery = self.discovery().await?;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let mut cookies = Cookies::default();
        let verifier = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = uuid::Uuid::new_v4().simple().to_string();
        let mut authorize =
            reqwest::Url::parse(discovery["authorization_endpoint"].as_str().context("no authorization_endpoint")?)?;
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", &client.redirect_uri)
            .append_pair("scope", "openid")
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(resource) = resource {
            authorize.query_pairs_mut().append_pair("resource", resource);
        }
        let mut next = authorize;
        let code = 'redirects: {
            for _ in 0..10 {
                if next.as_str().starts_with(&client.redirect_uri) {
                    let query: BTreeMap<_, _> = next.query_pairs().into_owned().collect();
                    ensure!(query.get("state") == Some(&state), "the redirect lost the state: {next}");
                    ensure!(
                        query.get("iss") == Some(&self.issuer),
                        "the redirect names another issuer (RFC 9207): {next}"
                    );
                    break 'redirects query.get("code").cloned().with_context(|| format!("no code: {next}"))?;
                }
                let page = cookies.send(http.get(next.clone())).await?;
                let response = if next.path().starts_with("/interaction/") && page.status().is_success() {
                    let html = page.text().await?;
                    let form: Vec<(&str, &str)> = if html.contains(r#"name="prompt" value="login""#) {
                        vec![("prompt", "login"), ("login", login), ("password", "any")]
                    } else if html.contains(r#"name="prompt" value="consent""#) {
                        vec![("prompt", "consent")]
                    } else {
                        bail!("an interaction page with neither login nor consent form:\n{html}");
                    };
                    cookies.send(http.post(next.clone()).form(&form)).await?
                } else {
                    page
                };
                let Some(location) = response.headers().get("location") else {
                    bail!("{next} answered {} without a redirect: {}", response.status(), response.text().await?);
                };
                next = next.join(location.to_str()?)?;
            }
            bail!("no code after 10 redirects");
        };
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let token_endpoint = discovery["token_endpoint"].as_str().context("no token_endpoint")?;
        let request = match &client.secret {
            Some(secret) => http.post(token_endpoint).basic_auth(&client.id, Some(secret)),
            None => {
                form.push(("client_id", client.id.as_str()));
                http.post(token_endpoint)
            }
        };
        let response = request.form(&form).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status.is_success(), "the token request failed ({status}): {body}");
        Ok(Tokens {
            access_token: body["access_token"].as_str().context("no access_token")?.to_owned(),
            id_token: body["id_token"].as_str().context("no id_token")?.to_owned(),
        })
    }
}

/// The provider's session and interaction cookies across the redirects of one sign-in.
#[derive(Default)]
struct Cookies(BTreeMap<String, String>);

impl Cookies {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let header = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let response = request.header("cookie", header).send().await?;
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str()?.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.0.remove(name);
                } else {
                    self.0.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Ok(response)
    }
}

/// The claims of a JWT, unverified (to look at what the provider issued).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap_or_default()).unwrap_or(Value::Null)
}

/// The header of a JWT, unverified.
pub fn header(jwt: &str) -> Value {
    let head = jwt.split('.').next().unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap_or_default()).unwrap_or(Value::Null)
}
