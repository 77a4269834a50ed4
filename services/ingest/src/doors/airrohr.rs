//! `POST /v1/push/airrohr/{org}`: the sensor.community (airrohr) firmware's
//! "send to own API". The firmware names itself in `X-Sensor`
//! (`esp8266-<chip id>`), which is the external id of a thing of `{org}`,
//! and authenticates with that thing's device token as the HTTP basic auth
//! password (the user is not looked at; `Authorization: Bearer <token>` is
//! accepted too). The body is decoded by [`crate::airrohr`]; the device is
//! the writer, so the door decides (`writer: None`).
//!
//! A device that is not registered, or has no token, is answered `401` like
//! a wrong token, and leaves no dead letter: without a device there is no
//! token to check, and strangers must not fill an organisation's dead
//! letters.

use axum::body::Body as HttpBody;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hoheit_domain::door::Door;
use hoheit_domain::Slug;

use super::{DoorError, Doors};
use crate::inbound::{Body, Inbound, Target};

pub fn routes() -> Router<Doors> {
    Router::new().route("/v1/push/airrohr/{org}", post(airrohr))
}

async fn airrohr(State(doors): State<Doors>, Path(org): Path<String>, headers: HeaderMap, body: HttpBody) -> Response {
    let answer = async {
        let org = Slug::parse("organisation", &org).map_err(|e| DoorError::BadRequest(e.to_string()))?;
        let device = sensor(&headers)?;
        let token = presented_token(&headers).ok_or_else(|| {
            DoorError::Unauthorized(format!(
                "present the device token of {device} as the password of HTTP basic auth (the firmware's \"send to own API\" user and password) or as Authorization: Bearer"
            ))
        })?;
        doors.take_rate(&format!("airrohr:{org}/{device}"))?;
        doors.authenticate_device(&org, &device, &token).await?;
        let payload = doors.body(body).await?;
        let decoded = crate::airrohr::decode(&payload, doors.limits());
        let inbound = Inbound {
            door: Door::Airrohr,
            target: Target::Device { org, device },
            body: Body::Decoded(decoded),
            payload,
            writer: None,
        };
        doors.deliver(inbound).await
    };
    match answer.await {
        Ok(receipt) => (StatusCode::ACCEPTED, Json(receipt)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The device the firmware names: `X-Sensor: esp8266-<chip id>` (lower case).
fn sensor(headers: &HeaderMap) -> Result<String, DoorError> {
    let value = headers.get("x-sensor").and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or_default();
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DoorError::BadRequest(
            "the X-Sensor header (esp8266-<chip id>, as the airrohr firmware sends it) is missing or invalid".into(),
        ));
    }
    Ok(value.to_ascii_lowercase())
}

/// The token: the password of `Authorization: Basic`, or `Authorization: Bearer`.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = authorization.trim().split_once(' ')?;
    let token = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(STANDARD.decode(credential.trim()).ok()?).ok()?;
        decoded.split_once(':')?.1.to_owned()
    } else if scheme.eq_ignore_ascii_case("bearer") {
        credential.trim().to_owned()
    } else {
        return None;
    };
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_token_is_the_basic_auth_password_or_a_bearer_token() {
        let basic = format!("Basic {}", STANDARD.encode("esp8266-15793365:hdt_abc:def"));
        assert_eq!(presented_token(&with("authorization", &basic)).as_deref(), Some("hdt_abc:def"));
        assert_eq!(presented_token(&with("authorization", "Bearer hdt_abc")).as_deref(), Some("hdt_abc"));
        let no_password = format!("Basic {}", STANDARD.encode("esp8266-15793365:"));
        assert_eq!(presented_token(&with("authorization", &no_password)), None);
        assert_eq!(presented_token(&with("authorization", "Basic !!!")), None);
        assert_eq!(presented_token(&HeaderMap::new()), None);
    }

    #[test]
    fn the_sensor_header_names_the_device_in_lower_case() {
        assert_eq!(sensor(&with("x-sensor", "ESP8266-15793365")).unwrap(), "esp8266-15793365");
        assert!(matches!(sensor(&HeaderMap::new()), Err(DoorError::BadRequest(_))));
    }
}
