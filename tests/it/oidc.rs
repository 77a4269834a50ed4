//! OIDC bearer tokens against an independent, OpenID Certified identity
//! provider (oidc-provider, `tests/oidc-provider/provider.mjs`): the API finds
//! the keys through the provider's discovery, accepts its RS256 and ES256
//! access tokens for the API's audience from the accepted clients and maps
//! them to principals; it refuses, with a reason, tokens that are expired, not
//! yet valid, for another API, of another issuer, tampered with, of another
//! client, of an unknown subject, and ID tokens. A key rotation at the
//! provider needs no restart of the API, tokens with made-up key ids do not
//! make the API flood the provider with key fetches, and a key the provider
//! withdrew is refused once the API's cached keys reach their maximum age.

use std::time::{Duration, Instant};

use hoheit_api::ApiConfig;
use hoheit_tests::identity_provider::{claims, header, Client, IdentityProvider, AUDIENCE, OTHER_RESOURCE};
use hoheit_tests::{start_api_with, ApiClient, Isolation, Running};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The clients of the provider in these tests; the API accepts the first three.
fn clients() -> Vec<Client> {
    vec![
        Client::confidential("hoheit-rs256", "RS256"),
        Client::confidential("hoheit-es256", "ES256"),
        // Its access tokens live one second: the provider itself issues the expired token.
        Client::confidential("hoheit-brief", "ES256").with_ttl(1),
        // Another application of the town at the same provider, e.g. the parking app.
        Client::confidential("parkraum-app", "ES256"),
    ]
}

const ACCEPTED_CLIENTS: [&str; 3] = ["hoheit-rs256", "hoheit-es256", "hoheit-brief"];

/// The API configured for the provider (keys through discovery, no clock skew, so that the
/// expired token is refused as soon as it expires), a department member `kc-4711` and an
/// internal datastream only the town's members may read.
async fn api_for(
    provider: &IdentityProvider,
    isolation: &Isolation,
    configure: impl FnOnce(&mut ApiConfig),
) -> anyhow::Result<(Running, ApiClient, String)> {
    let (running, api) = start_api_with(isolation, |api| {
        api.oidc.issuer = Some(provider.issuer.clone());
        api.oidc.audience = AUDIENCE.to_owned();
        api.oidc.leeway_secs = 0;
        api.oidc.client_ids = ACCEPTED_CLIENTS.map(str::to_owned).to_vec();
        configure(api);
    })
    .await?;
    api.organisation("stadt", "municipality", None).await?;
    api.organisation("amt-umwelt", "department", Some("stadt")).await?;
    let id = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    api.post_ok(
        "/v1/admin/principals",
        json!({"org": "amt-umwelt", "name": "erika", "kind": "person", "role": "reader", "oidc_subject": "kc-4711"}),
    )
    .await?;
    Ok((running, api, format!("/v1/datastreams/{id}")))
}

async fn read_as(api: &ApiClient, token: &str, path: &str) -> (u16, Value) {
    let response = api.get_as(Some(token), path).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A real token of the provider with `change` applied to its claims, signed again with the
/// provider's own private key (same `kid`): for claims the provider cannot be made to issue.
fn resigned(provider: &IdentityProvider, token: &str, change: impl FnOnce(&mut Value)) -> String {
    let head = header(token);
    let key = provider.keys.iter().find(|k| head["kid"] == k.kid.as_str()).expect("signed with a provider key");
    let mut payload = claims(token);
    change(&mut payload);
    let (alg, encoding) = match key.alg.as_str() {
        "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_pem(key.pem.as_bytes()).unwrap()),
        _ => (Algorithm::ES256, EncodingKey::from_ec_pem(key.pem.as_bytes()).unwrap()),
    };
    let mut header = Header::new(alg);
    header.kid = Some(key.kid.clone());
    header.typ = head["typ"].as_str().map(str::to_owned);
    encode(&header, &payload, &encoding).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_of_a_certified_provider_map_to_principals_and_bad_ones_are_refused() -> anyhow::Result<()> {
    let provider = IdentityProvider::start(&clients()).await?;
    let discovery = provider.discovery().await?;
    assert!(discovery["jwks_uri"].as_str().is_some_and(|u| u.starts_with(&provider.issuer)), "{discovery}");
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api, path) = api_for(&provider, &isolation, |_| {}).await?;

    for (client, alg) in [("hoheit-rs256", "RS256"), ("hoheit-es256", "ES256")] {
        let tokens = provider.sign_in(client, "kc-4711", None).await?;
        assert_eq!(header(&tokens.access_token)["alg"], alg);
        assert_eq!(claims(&tokens.access_token)["aud"], AUDIENCE, "the provider issued a token for the API");
        let (status, body) = read_as(&api, &tokens.access_token, &path).await;
        assert_eq!(status, 200, "{alg}: a department member reads the town's internal data: {body}");
    }

    let valid = provider.sign_in("hoheit-es256", "kc-4711", None).await?;
    let brief = provider.sign_in("hoheit-brief", "kc-4711", None).await?;
    let exp = claims(&brief.access_token)["exp"].as_i64().unwrap();
    let wait = (exp + 1 - chrono::Utc::now().timestamp()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(wait)).await;

    // Each case: the token, why it must be refused, and what the reason must say.
    let now = chrono::Utc::now().timestamp();
    let mut tampered: Vec<&str> = valid.access_token.split('.').collect();
    let forged_claims = {
        let mut c = claims(&valid.access_token);
        c["sub"] = json!("kc-admin");
        base64_url(&serde_json::to_vec(&c)?)
    };
    tampered[1] = &forged_claims;
    let cases = [
        (brief.access_token.clone(), "expired, as issued by the provider", "expired (`exp`)"),
        (
            // The provider sets no `nbf`; re-signed with its key.
            resigned(&provider, &valid.access_token, |c| c["nbf"] = json!(now + 3600)),
            "not valid before an hour from now",
            "not valid yet (`nbf`)",
        ),
        (
            provider.sign_in("hoheit-es256", "kc-4711", Some(OTHER_RESOURCE)).await?.access_token,
            "the provider's token for another API",
            "audience (`aud`)",
        ),
        (valid.id_token.clone(), "an ID token (its audience is the client)", "audience (`aud`)"),
        (
            // The provider only ever names itself; re-signed with its key.
            resigned(&provider, &valid.access_token, |c| c["iss"] = json!("http://login.evil.example")),
            "another issuer",
            "issuer (`iss`)",
        ),
        (tampered.join("."), "claims changed after signing", "signature does not verify"),
        (
            provider.sign_in("parkraum-app", "kc-4711", None).await?.access_token,
            "the same person's token issued to another client",
            "client \"parkraum-app\"",
        ),
        (
            provider.sign_in("hoheit-es256", "kc-nobody", None).await?.access_token,
            "a subject no principal has",
            "no principal",
        ),
        (
            // Algorithm confusion: a shared-secret signature (attackers use the public key as the secret).
            encode(&Header::new(Algorithm::HS256), &claims(&valid.access_token), &EncodingKey::from_secret(b"guess"))?,
            "HS256",
            "asymmetric",
        ),
    ];
    for (token, case, reason) in cases {
        let (status, body) = read_as(&api, &token, &path).await;
        assert_eq!(status, 401, "{case}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(reason), "{case}: the reason should say {reason:?}: {body}");
    }
    let (status, body) = read_as(&api, &valid.access_token, &path).await;
    assert_eq!(status, 200, "the valid token still works: {body}");

    running.stop().await?;
    provider.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_at_the_provider_needs_no_restart_of_the_api() -> anyhow::Result<()> {
    let started = Instant::now();
    let provider = IdentityProvider::start(&clients()).await?;
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    // The flood of refused tokens below would otherwise meet the per-address limit of failed
    // authentications (its own test is in tests/it/limits.rs); here it is the key fetches that count.
    let (running, api, path) = api_for(&provider, &isolation, |api| api.auth_failures_per_minute = 1000).await?;

    let before = provider.sign_in("hoheit-es256", "kc-4711", None).await?.access_token;
    let (status, body) = read_as(&api, &before, &path).await;
    assert_eq!(status, 200, "{body}");

    let provider = provider.rotate_keys().await?;
    let after = provider.sign_in("hoheit-es256", "kc-4711", None).await?.access_token;
    assert_ne!(header(&after)["kid"], header(&before)["kid"], "the provider signs with a new key");
    let (status, body) = read_as(&api, &after, &path).await;
    assert_eq!(status, 200, "a token of the new key, moments after the API fetched the old keys: {body}");
    let rs256 = provider.sign_in("hoheit-rs256", "kc-4711", None).await?.access_token;
    assert_eq!(read_as(&api, &rs256, &path).await.0, 200, "the new RSA key too");
    let (status, body) = read_as(&api, &before, &path).await;
    assert_eq!(status, 401, "the retired key is no longer the provider's: {body}");
    assert!(body["detail"].as_str().unwrap_or_default().contains("not among the issuer's keys"), "{body}");

    // A flood of tokens with made-up key ids.
    let rest = after.split_once('.').unwrap().1;
    for i in 0..30 {
        let mut head = header(&after);
        head["kid"] = json!(format!("made-up-{i}"));
        let token = format!("{}.{rest}", base64_url(&serde_json::to_vec(&head)?));
        let (status, body) = read_as(&api, &token, &path).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["detail"].as_str().unwrap_or_default().contains("not among the issuer's keys"), "{body}");
    }
    // The API's budget for key fetches: 3 at once, then one per 10 s since it started (two
    // were used for the first token and for the rotation).
    let bound = 3 + started.elapsed().as_secs() as usize / 10;
    let fetched = provider.jwks_requests();
    assert!(fetched <= bound, "the API fetched the keys {fetched} times (bound {bound})");
    let (status, body) = read_as(&api, &after, &path).await;
    assert_eq!(status, 200, "the current key still works: {body}");

    running.stop().await?;
    provider.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_provider_withdrew_is_refused_once_the_cached_keys_are_old() -> anyhow::Result<()> {
    let provider = IdentityProvider::start(&clients()).await?;
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api, path) = api_for(&provider, &isolation, |api| api.oidc.jwks_max_age_secs = 1).await?;

    let before = provider.sign_in("hoheit-es256", "kc-4711", None).await?.access_token;
    let (status, body) = read_as(&api, &before, &path).await;
    assert_eq!(status, 200, "{body}");
    let fetched_by = Instant::now();
    // The provider withdraws the key (e.g. compromised); no token of its new key reaches the API.
    let provider = provider.rotate_keys().await?;
    tokio::time::sleep((fetched_by + Duration::from_secs(2)).saturating_duration_since(Instant::now())).await;
    let (status, body) = read_as(&api, &before, &path).await;
    assert_eq!(status, 401, "a still unexpired token of the withdrawn key: {body}");
    assert!(body["detail"].as_str().unwrap_or_default().contains("not among the issuer's keys"), "{body}");

    running.stop().await?;
    provider.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
