//! OIDC bearer tokens: a key pair made in the test, its JWKS served on
//! loopback as an issuer would, and tokens that are valid, expired, for
//! another audience or issuer, signed by another key, or of an unknown
//! subject.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use hoheit_tests::{start_api_with, Isolation};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};

struct Issuer {
    url: String,
    key: SigningKey,
    task: tokio::task::JoinHandle<()>,
}

fn jwk(key: &SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
           "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())})
}

async fn issuer() -> Issuer {
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let jwks = json!({"keys": [jwk(&key, "k1")]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let issuer_url = url.clone();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move {
                axum::Json(json!({"issuer": issuer_url, "jwks_uri": format!("{issuer_url}/certs")}))
            }),
        )
        .route("/certs", axum::routing::get(move || async move { axum::Json(jwks) }));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Issuer { url, key, task }
}

fn token(key: &SigningKey, claims: Value) -> String {
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    encode(&header, &claims, &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_of_the_configured_issuer_map_to_principals_and_bad_ones_are_refused() {
    let issuer = issuer().await;
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let issuer_flag = format!("--oidc-issuer={}", issuer.url);
    let (running, api) = start_api_with(&isolation, &[&issuer_flag, "--oidc-audience=hoheit"]).await.unwrap();
    api.organisation("stadt", "municipality", None).await.unwrap();
    api.organisation("amt-umwelt", "department", Some("stadt")).await.unwrap();
    let id = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await.unwrap();
    api.post_ok(
        "/v1/admin/principals",
        json!({"org": "amt-umwelt", "name": "erika", "kind": "person", "role": "reader", "oidc_subject": "kc-4711"}),
    )
    .await
    .unwrap();

    let now = Utc::now().timestamp();
    let claims = |sub: &str, aud: &str, iss: &str, exp: i64| json!({"sub": sub, "aud": aud, "iss": iss, "exp": exp, "iat": now, "nbf": now - 5});
    let path = format!("/v1/datastreams/{id}");
    let valid = token(&issuer.key, claims("kc-4711", "hoheit", &issuer.url, now + 300));
    let response = api.get_as(Some(&valid), &path).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "a department member reads the town's internal data: {}",
        response.text().await.unwrap()
    );

    let other_key = SigningKey::random(&mut rand::rngs::OsRng);
    let hs256 = encode(
        &Header::new(Algorithm::HS256),
        &claims("kc-4711", "hoheit", &issuer.url, now + 300),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let cases = [
        (token(&issuer.key, claims("kc-4711", "hoheit", &issuer.url, now - 600)), "Expired"),
        (token(&issuer.key, claims("kc-4711", "other-app", &issuer.url, now + 300)), "Audience"),
        (token(&issuer.key, claims("kc-4711", "hoheit", "http://evil.example", now + 300)), "Issuer"),
        (token(&other_key, claims("kc-4711", "hoheit", &issuer.url, now + 300)), "Signature"),
        (token(&issuer.key, claims("kc-nobody", "hoheit", &issuer.url, now + 300)), "no principal"),
        (hs256, "asymmetric"),
    ];
    for (bad, needle) in cases {
        let response = api.get_as(Some(&bad), &path).send().await.unwrap();
        assert_eq!(response.status(), 401, "{needle}");
        let body: Value = response.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().to_lowercase().contains(&needle.to_lowercase()), "{needle}: {body}");
    }
    issuer.task.abort();
    running.stop().await.unwrap();
    pool.close().await;
    isolation.drop_database().await;
}
