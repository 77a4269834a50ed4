//! What a notification says, pure: the webhook's JSON body and its
//! signature, and the e-mail's subject and text in German or English.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use hoheit_domain::alert::Condition;
use hoheit_store::alert_state::DueDelivery;
use serde_json::{json, Value};
use sha2::Sha256;

/// The webhook's body: the event, its rule and its datastream.
pub fn webhook_body(delivery: &DueDelivery) -> Value {
    json!({
        "event": {
            "id": delivery.event_id,
            "state": delivery.event_kind,
            "at": timestamp(delivery.event_at),
            "value": delivery.event_value,
        },
        "rule": {
            "id": delivery.rule_id,
            "name": delivery.rule_name,
            "condition": Condition::from_stored(&delivery.rule_kind, delivery.threshold),
            "for_minutes": delivery.for_secs / 60,
            "hysteresis": delivery.hysteresis,
            "aggregate": aggregate(delivery.resolution_secs),
        },
        "datastream": {
            "id": delivery.datastream_id,
            "thing": delivery.thing,
            "property": delivery.property,
            "unit": delivery.unit,
            "organisation": delivery.organisation,
        },
    })
}

/// `sha256=<hex>`: HMAC-SHA256 of exactly `body` with the rule's secret (its
/// text as shown when the rule was made) as the key.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An aggregate interval as the API writes it (`15m`, `1h`, `1d`), or null for raw readings.
fn aggregate(secs: i32) -> Option<String> {
    match secs {
        0 => None,
        s if s % 86_400 == 0 => Some(format!("{}d", s / 86_400)),
        s if s % 3_600 == 0 => Some(format!("{}h", s / 3_600)),
        s if s % 60 == 0 => Some(format!("{}m", s / 60)),
        s => Some(format!("{s}s")),
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An e-mail's subject and plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
}

/// The e-mail of `delivery` in its rule's language (German unless `en`).
pub fn mail(delivery: &DueDelivery) -> Mail {
    let english = delivery.language == "en";
    let firing = delivery.event_kind == "firing";
    let stream = format!("{} / {} / {}", delivery.organisation, delivery.thing, delivery.property);
    let unit = delivery.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
    let value = delivery.event_value.map(|v| format!("{v}{unit}"));
    let at = timestamp(delivery.event_at);
    let condition = describe(delivery, english);
    let (subject, lines) = if english {
        let subject = format!("[Hoheit] {} {}", if firing { "Alert firing:" } else { "Resolved:" }, delivery.rule_name);
        let state = if firing { "fired" } else { "resolved" };
        let lines = [
            format!("The alert rule \"{}\" {state} at {at}.", delivery.rule_name),
            format!("Datastream: {stream} (id {})", delivery.datastream_id),
            format!("Condition: {condition}"),
            value.map(|v| format!("Value: {v}")).unwrap_or_default(),
        ];
        (subject, lines)
    } else {
        let subject = format!(
            "[Hoheit] {} {}",
            if firing { "Alarm ausgelöst:" } else { "Alarm aufgehoben:" },
            delivery.rule_name
        );
        let state = if firing { "ausgelöst" } else { "aufgehoben" };
        let lines = [
            format!("Die Alarmregel „{}“ wurde um {at} {state}.", delivery.rule_name),
            format!("Datenstrom: {stream} (Nr. {})", delivery.datastream_id),
            format!("Bedingung: {condition}"),
            value.map(|v| format!("Wert: {v}")).unwrap_or_default(),
        ];
        (subject, lines)
    };
    let mut text: Vec<String> = lines.into_iter().filter(|l| !l.is_empty()).collect();
    text.push(String::new());
    text.push(if english {
        format!("Event {} of rule {}; Hoheit sends one message per state change.", delivery.event_id, delivery.rule_id)
    } else {
        format!(
            "Ereignis {} der Regel {}; Hoheit sendet eine Nachricht je Zustandswechsel.",
            delivery.event_id, delivery.rule_id
        )
    });
    Mail { subject, text: text.join("\n") + "\n" }
}

/// The rule's condition in words.
fn describe(delivery: &DueDelivery, english: bool) -> String {
    let unit = delivery.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
    let minutes = delivery.for_secs / 60;
    let over = match aggregate(delivery.resolution_secs) {
        Some(interval) if english => format!(" (averages over {interval})"),
        Some(interval) => format!(" (Mittelwerte über {interval})"),
        None => String::new(),
    };
    let held = match (minutes, english) {
        (0, _) => String::new(),
        (m, true) => format!(" for at least {m} min"),
        (m, false) => format!(" für mindestens {m} min"),
    };
    let condition = Condition::from_stored(&delivery.rule_kind, delivery.threshold);
    let what = match (condition, english) {
        (Some(Condition::Above { threshold }), true) => format!("above {threshold}{unit}{held}"),
        (Some(Condition::Above { threshold }), false) => format!("über {threshold}{unit}{held}"),
        (Some(Condition::Below { threshold }), true) => format!("below {threshold}{unit}{held}"),
        (Some(Condition::Below { threshold }), false) => format!("unter {threshold}{unit}{held}"),
        (Some(Condition::Rate { per_minute }), true) => {
            format!("changes faster than {per_minute}{unit} per minute{held}")
        }
        (Some(Condition::Rate { per_minute }), false) => {
            format!("ändert sich schneller als {per_minute}{unit} pro Minute{held}")
        }
        (Some(Condition::Silent), true) => format!("no reading for {minutes} min"),
        (Some(Condition::Silent), false) => format!("kein Messwert seit {minutes} min"),
        (None, _) => delivery.rule_kind.clone(),
    };
    what + &over
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(language: &str, kind: &str) -> DueDelivery {
        DueDelivery {
            id: 1,
            channel: "email".into(),
            target: "a@b.de".into(),
            attempts: 0,
            event_id: 42,
            event_kind: kind.into(),
            event_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            event_value: Some(230.5),
            rule_id: 7,
            rule_name: "NO2 Stundenmittel".into(),
            rule_kind: "above".into(),
            threshold: Some(200.0),
            for_secs: 3600,
            hysteresis: 10.0,
            resolution_secs: 900,
            webhook_secret: Some("secret".into()),
            language: language.into(),
            datastream_id: 12,
            thing: "luft-1".into(),
            property: "no2".into(),
            unit: Some("µg/m³".into()),
            organisation: "umweltamt".into(),
        }
    }

    #[test]
    fn the_webhook_body_names_event_rule_and_datastream() {
        let body = webhook_body(&delivery("de", "firing"));
        assert_eq!(
            body["event"],
            json!({"id": 42, "state": "firing", "at": "2023-11-14T22:13:20.000Z", "value": 230.5})
        );
        assert_eq!(body["rule"]["condition"], json!({"kind": "above", "threshold": 200.0}));
        assert_eq!((body["rule"]["for_minutes"].as_i64(), body["rule"]["aggregate"].as_str()), (Some(60), Some("15m")));
        assert_eq!(body["datastream"]["organisation"], "umweltamt");
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_mail_speaks_the_rules_language() {
        let de = mail(&delivery("de", "firing"));
        assert_eq!(de.subject, "[Hoheit] Alarm ausgelöst: NO2 Stundenmittel");
        assert!(
            de.text.contains("Bedingung: über 200 µg/m³ für mindestens 60 min (Mittelwerte über 15m)"),
            "{}",
            de.text
        );
        assert!(de.text.contains("Wert: 230.5 µg/m³"));
        let en = mail(&delivery("en", "resolved"));
        assert_eq!(en.subject, "[Hoheit] Resolved: NO2 Stundenmittel");
        assert!(en.text.contains("resolved at 2023-11-14T22:13:20.000Z"), "{}", en.text);
        assert_eq!(aggregate(90), Some("90s".into()));
        assert_eq!(aggregate(86_400), Some("1d".into()));
    }
}
