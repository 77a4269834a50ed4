//! What each MQTT user may do, from the registry's MQTT credentials, and
//! Mosquitto 2.0's password and ACL files rendered from it (pure: no I/O, so
//! the rules are tested here). The dynamic security plugin's roles
//! ([`crate::dynsec`]) are made from the same [`key_topics`].
//!
//! - every usable API key is an MQTT user `hoh_<lookup>` whose password is the
//!   key itself. A `reader` key writes nothing (it reads, and MQTT carries no
//!   reads). A writer key (`publisher`, `data_owner`, `admin`) may `write`
//!   below its own organisation's topics, `{root}/{org}/#`, and the
//!   SensorThings create topics `v1.1/Datastreams({id})/Observations` of its
//!   organisation's datastreams, so it can never inject readings for another
//!   organisation (ingest checks the topic's organisation as well);
//! - a supplier's writer keys additionally write the topics of the things
//!   that its supply grants in force cover (`{root}/{owner}/{thing}` and
//!   below, and those things' datastreams' SensorThings topics): only grants
//!   in force when the files are rendered, so rendering again after a grant
//!   ended takes its rights away (run `hoheit-admin mqtt-config` after each
//!   change and when a grant's validity ends, e.g. from a timer);
//! - one service user, the ingest service, may `read` `{root}/#` and nothing
//!   else;
//! - optionally one gateway user (the simulator, or a trusted gateway that
//!   forwards for several organisations) may `write` `{root}/#` and read
//!   nothing;
//! - anything not listed is denied (with an `acl_file`, Mosquitto denies by
//!   default), and anonymous clients are refused by `allow_anonymous false`.

use std::collections::{BTreeMap, BTreeSet};

use hoheit_domain::policy::Role;
use hoheit_domain::Slug;
use hoheit_store::principals::MqttCredential;
use hoheit_store::registry::OwnedDatastream;
use hoheit_store::supply::SuppliedDatastream;

/// The user names of API keys; a service user may not look like one.
pub const KEY_USER_PREFIX: &str = "hoh_";

/// A registry value or argument that cannot become a broker user or rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// A topic root: `/`-separated non-empty levels without wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoot(String);

impl TopicRoot {
    pub fn parse(value: &str) -> Result<Self, RuleError> {
        let bad = |why: &str| RuleError(format!("topic root {value:?} {why}"));
        if value.is_empty() || value.len() > 200 {
            return Err(bad("must be 1 to 200 characters"));
        }
        if value.split('/').any(str::is_empty) {
            return Err(bad("must not start or end with '/' or contain '//'"));
        }
        if value.chars().any(|c| c == '+' || c == '#' || c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain wildcards (+, #), spaces or control characters"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user name the password file can hold: no ':' (the separator), no
/// spaces at either end, no control characters, not reserved for keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUserName(String);

impl ServiceUserName {
    pub fn parse(value: &str) -> Result<Self, RuleError> {
        let bad = |why: &str| RuleError(format!("MQTT user name {value:?} {why}"));
        if value.is_empty() || value.chars().count() > 64 {
            return Err(bad("must be 1 to 64 characters"));
        }
        if value.contains(':') || value.chars().any(char::is_control) || value.trim() != value {
            return Err(bad("must not contain ':' or control characters, nor start or end with a space"));
        }
        if value.starts_with(KEY_USER_PREFIX) {
            return Err(bad("starts with \"hoh_\", which is reserved for API keys"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One user with the broker's hash of its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUser {
    pub name: String,
    /// `$7$<iterations>$<salt>$<hash>` (PBKDF2-SHA512).
    pub hash: String,
}

/// The MQTT user of one API key, the organisation it publishes for and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUser {
    pub user: BrokerUser,
    pub org: Slug,
    pub role: Role,
}

impl KeyUser {
    /// From a row of [`hoheit_store::principals::mqtt_credentials`].
    pub fn from_credential(credential: MqttCredential) -> Result<Self, RuleError> {
        let MqttCredential { user: name, hash, org, role } = credential;
        let lookup = name.strip_prefix(KEY_USER_PREFIX).unwrap_or_default();
        let valid_name = lookup.len() == 16 && lookup.bytes().all(|b| b.is_ascii_hexdigit());
        let valid_hash = hash.starts_with("$7$") && hash.chars().all(|c| c.is_ascii_graphic() && c != ':');
        if !valid_name || !valid_hash {
            return Err(RuleError(format!(
                "the stored MQTT credential of key user {:?} is malformed; revoke that key",
                name.chars().take(24).collect::<String>()
            )));
        }
        let org = Slug::parse("organisation", &org)
            .map_err(|e| RuleError(format!("the organisation of key user {name}: {e}")))?;
        let role: Role = role.parse().map_err(|e| RuleError(format!("the role of key user {name}: {e}")))?;
        Ok(Self { user: BrokerUser { name, hash }, org, role })
    }

    /// Whether the key may write readings at all (`reader` keys may not).
    pub fn writes(&self) -> bool {
        self.role != Role::Reader
    }
}

/// What writer keys may write besides their organisation's topic tree: the
/// SensorThings topics of their own datastreams, and what supply grants in
/// force let them deliver into other organisations' datastreams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteScope {
    /// Datastream ids by owning organisation.
    own: BTreeMap<Slug, BTreeSet<i64>>,
    /// By supplier: the things (owner, thing) and datastream ids it supplies.
    supplied: BTreeMap<Slug, Supplies>,
}

/// What one supplier's keys may deliver into other organisations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Supplies {
    things: BTreeSet<(Slug, Slug)>,
    datastreams: BTreeSet<i64>,
}

impl WriteScope {
    /// From the registry's datastreams and the datastreams supply grants in force cover.
    pub fn from_registry(own: Vec<OwnedDatastream>, supplied: Vec<SuppliedDatastream>) -> Result<Self, RuleError> {
        let slug = |kind: &'static str, value: &str| {
            Slug::parse(kind, value).map_err(|e| RuleError(format!("a stored {kind} slug: {e}")))
        };
        let mut scope = Self::default();
        for d in own {
            scope.own.entry(slug("organisation", &d.org)?).or_default().insert(d.datastream_id);
        }
        for d in supplied {
            let supplies = scope.supplied.entry(slug("organisation", &d.supplier)?).or_default();
            supplies.things.insert((slug("organisation", &d.owner)?, slug("thing", &d.thing)?));
            supplies.datastreams.insert(d.datastream_id);
        }
        Ok(scope)
    }

    /// The number of (owner, thing) pairs supplied by all suppliers.
    pub fn supplied_things(&self) -> usize {
        self.supplied.values().map(|s| s.things.len()).sum()
    }
}

/// What ingest subscribes to for SensorThings' MQTT create (its default `--sta-mqtt-prefix`).
pub const STA_CREATE_FILTER: &str = "v1.1/+/Observations";

/// The SensorThings MQTT create topic of a datastream.
pub fn sta_create_topic(datastream_id: i64) -> String {
    format!("v1.1/Datastreams({datastream_id})/Observations")
}

/// The topics one key may publish to, in a stable order: its organisation's
/// tree and its datastreams' SensorThings topics, then what supply grants in
/// force let it deliver; nothing for reader keys.
pub fn key_topics(root: &TopicRoot, key: &KeyUser, scope: &WriteScope) -> Vec<String> {
    if !key.writes() {
        return Vec::new();
    }
    let (root, org) = (root.as_str(), &key.org);
    let mut topics = vec![format!("{root}/{org}/#")];
    topics.extend(scope.own.get(org).into_iter().flatten().map(|id| sta_create_topic(*id)));
    if let Some(supplies) = scope.supplied.get(org) {
        for (owner, thing) in &supplies.things {
            topics.push(format!("{root}/{owner}/{thing}"));
            topics.push(format!("{root}/{owner}/{thing}/#"));
        }
        topics.extend(supplies.datastreams.iter().map(|id| sta_create_topic(*id)));
    }
    topics
}

/// The ACL lines of one key.
fn key_rules(root: &TopicRoot, key: &KeyUser, scope: &WriteScope) -> String {
    let topics = key_topics(root, key, scope);
    let what = if key.writes() { "" } else { ": writes nothing" };
    let mut rules = format!("\n# a {} key of organisation {}{what}\nuser {}\n", key.role, key.org, key.user.name);
    for topic in topics {
        rules.push_str(&format!("topic write {topic}\n"));
    }
    rules
}

/// Both files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFiles {
    pub password_file: String,
    pub acl_file: String,
}

/// The service users of the broker: ingest, and the optional gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUsers {
    /// Reads every organisation's topics.
    pub ingest: BrokerUser,
    /// Writes every organisation's topics (the simulator, a multi-tenant gateway).
    pub gateway: Option<BrokerUser>,
}

/// Renders the password and ACL files; `generated` goes into their headers.
pub fn render(
    root: &TopicRoot,
    services: &ServiceUsers,
    keys: &[KeyUser],
    scope: &WriteScope,
    generated: &str,
) -> BrokerFiles {
    let ingest = &services.ingest;
    let header = format!(
        "# Generated by `hoheit-admin mqtt-config` from the Hoheit registry at {generated}.\n\
         # Do not edit: the next run replaces this file. Reload the broker after a change (SIGHUP).\n"
    );
    let mut password_file = header.clone();
    password_file.push_str(&format!("{}:{}\n", ingest.name, ingest.hash));
    if let Some(gateway) = &services.gateway {
        password_file.push_str(&format!("{}:{}\n", gateway.name, gateway.hash));
    }
    for key in keys {
        password_file.push_str(&format!("{}:{}\n", key.user.name, key.user.hash));
    }

    let mut acl_file = header;
    acl_file.push_str(
        "# Every writer key is a user that may publish only below its own organisation's topics\n\
         # (and the things its organisation supplies under supply grants in force); reader keys\n\
         # publish nothing; the ingest service reads every organisation's topics. Everything else\n\
         # is denied.\n\n",
    );
    acl_file.push_str(&format!(
        "# the ingest service (and SensorThings' MQTT create topics)\nuser {}\ntopic read {}/#\ntopic read {STA_CREATE_FILTER}\n",
        ingest.name,
        root.as_str()
    ));
    if let Some(gateway) = &services.gateway {
        acl_file.push_str(&format!(
            "\n# the gateway: publishes for every organisation, reads nothing\nuser {}\ntopic write {}/#\n",
            gateway.name,
            root.as_str()
        ));
    }
    for key in keys {
        acl_file.push_str(&key_rules(root, key, scope));
    }
    BrokerFiles { password_file, acl_file }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(user: &str, hash: &str, org: &str, role: &str) -> MqttCredential {
        MqttCredential { user: user.into(), hash: hash.into(), org: org.into(), role: role.into() }
    }

    fn key_of(lookup: &str, org: &str, role: &str) -> KeyUser {
        KeyUser::from_credential(credential(&format!("hoh_{lookup}"), "$7$101$c2FsdA==$aGFzaA==", org, role)).unwrap()
    }

    fn key(lookup: &str, org: &str) -> KeyUser {
        key_of(lookup, org, "data_owner")
    }

    fn services() -> ServiceUsers {
        ServiceUsers {
            ingest: BrokerUser { name: "hoheit-ingest".into(), hash: "$7$101$aW5nZXN0$aGFzaA==".into() },
            gateway: None,
        }
    }

    /// The rules of the ACL file (no comments, no blank lines).
    fn rules(files: &BrokerFiles) -> Vec<&str> {
        files.acl_file.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
    }

    /// The rules of one user: its `user` line up to the next one.
    fn rules_of<'a>(files: &'a BrokerFiles, user: &str) -> Vec<&'a str> {
        rules(files)
            .into_iter()
            .skip_while(|l| *l != format!("user {user}"))
            .skip(1)
            .take_while(|l| !l.starts_with("user "))
            .collect()
    }

    fn owned(org: &str, id: i64) -> OwnedDatastream {
        OwnedDatastream { org: org.into(), datastream_id: id }
    }

    fn supplied(supplier: &str, owner: &str, thing: &str, id: i64) -> SuppliedDatastream {
        SuppliedDatastream { supplier: supplier.into(), owner: owner.into(), thing: thing.into(), datastream_id: id }
    }

    #[test]
    fn reader_keys_write_nothing_and_writer_keys_their_organisation_and_its_sensorthings_topics() {
        let root = TopicRoot::parse("hoheit/v1").unwrap();
        let keys = [
            key_of("0000000000000001", "stadt", "reader"),
            key_of("0000000000000002", "stadt", "publisher"),
            key_of("0000000000000003", "stadt", "data_owner"),
            key_of("0000000000000004", "stadt", "admin"),
        ];
        let scope =
            WriteScope::from_registry(vec![owned("stadt", 7), owned("stadt", 9), owned("andere", 11)], vec![]).unwrap();
        let files = render(&root, &services(), &keys, &scope, "2026-11-25T10:00:00Z");
        assert!(files.password_file.contains("\nhoh_0000000000000001:"), "a reader may connect");
        assert_eq!(rules_of(&files, "hoh_0000000000000001"), Vec::<&str>::new(), "a reader writes nothing");
        for writer in ["hoh_0000000000000002", "hoh_0000000000000003", "hoh_0000000000000004"] {
            assert_eq!(
                rules_of(&files, writer),
                [
                    "topic write hoheit/v1/stadt/#",
                    "topic write v1.1/Datastreams(7)/Observations",
                    "topic write v1.1/Datastreams(9)/Observations",
                ],
                "{writer}"
            );
        }
    }

    #[test]
    fn a_supplier_writes_the_things_its_grants_in_force_cover_and_no_other_of_the_owner() {
        let root = TopicRoot::parse("hoheit/v1").unwrap();
        let keys = [
            key_of("0000000000000001", "parkraum-gmbh", "publisher"),
            key_of("0000000000000002", "parkraum-gmbh", "reader"),
            key_of("0000000000000003", "stadt", "publisher"),
        ];
        let scope = WriteScope::from_registry(
            vec![owned("parkraum-gmbh", 3), owned("stadt", 7), owned("stadt", 8), owned("stadt", 9)],
            vec![
                supplied("parkraum-gmbh", "stadt", "parkhaus-1", 7),
                supplied("parkraum-gmbh", "stadt", "parkhaus-1", 8),
            ],
        )
        .unwrap();
        let files = render(&root, &services(), &keys, &scope, "2026-11-25T10:00:00Z");
        assert_eq!(
            rules_of(&files, "hoh_0000000000000001"),
            [
                "topic write hoheit/v1/parkraum-gmbh/#",
                "topic write v1.1/Datastreams(3)/Observations",
                "topic write hoheit/v1/stadt/parkhaus-1",
                "topic write hoheit/v1/stadt/parkhaus-1/#",
                "topic write v1.1/Datastreams(7)/Observations",
                "topic write v1.1/Datastreams(8)/Observations",
            ]
        );
        assert_eq!(
            rules_of(&files, "hoh_0000000000000002"),
            Vec::<&str>::new(),
            "the supplier's reader writes nothing"
        );
        assert_eq!(
            rules_of(&files, "hoh_0000000000000003"),
            [
                "topic write hoheit/v1/stadt/#",
                "topic write v1.1/Datastreams(7)/Observations",
                "topic write v1.1/Datastreams(8)/Observations",
                "topic write v1.1/Datastreams(9)/Observations",
            ],
            "the owner's keys are not changed by the grant"
        );
        // Without grants in force (re-rendered after the grant ended), the supplier writes only its own.
        let ended = WriteScope::from_registry(vec![owned("parkraum-gmbh", 3)], vec![]).unwrap();
        let files = render(&root, &services(), &keys, &ended, "2026-11-25T10:00:00Z");
        assert_eq!(
            rules_of(&files, "hoh_0000000000000001"),
            ["topic write hoheit/v1/parkraum-gmbh/#", "topic write v1.1/Datastreams(3)/Observations"]
        );
    }

    #[test]
    fn unknown_roles_and_malformed_supplied_slugs_are_reported_not_written() {
        assert!(KeyUser::from_credential(credential("hoh_0123456789abcdef", "$7$101$a$b", "stadt", "root")).is_err());
        assert!(WriteScope::from_registry(vec![], vec![supplied("a", "stadt", "thing\nuser evil", 1)]).is_err());
    }

    #[test]
    fn each_key_writes_only_below_its_organisation_and_ingest_only_reads() {
        let root = TopicRoot::parse("hoheit/v1").unwrap();
        let ingest = BrokerUser { name: "hoheit-ingest".into(), hash: "$7$101$aW5nZXN0$aGFzaA==".into() };
        let keys = [key("0123456789abcdef", "stadt-eberswalde"), key("fedcba9876543210", "stadtwerke-eberswalde")];
        let services = ServiceUsers { ingest, gateway: None };
        let files = render(&root, &services, &keys, &WriteScope::default(), "2026-11-25T10:00:00Z");
        let passwords: Vec<&str> = files.password_file.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            passwords,
            [
                "hoheit-ingest:$7$101$aW5nZXN0$aGFzaA==",
                "hoh_0123456789abcdef:$7$101$c2FsdA==$aGFzaA==",
                "hoh_fedcba9876543210:$7$101$c2FsdA==$aGFzaA==",
            ]
        );
        let rules: Vec<&str> = files.acl_file.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert_eq!(
            rules,
            [
                "user hoheit-ingest",
                "topic read hoheit/v1/#",
                "topic read v1.1/+/Observations",
                "user hoh_0123456789abcdef",
                "topic write hoheit/v1/stadt-eberswalde/#",
                "user hoh_fedcba9876543210",
                "topic write hoheit/v1/stadtwerke-eberswalde/#",
            ]
        );
    }

    #[test]
    fn the_gateway_writes_every_organisation_and_reads_nothing() {
        let root = TopicRoot::parse("hoheit/v1").unwrap();
        let services = ServiceUsers {
            ingest: BrokerUser { name: "hoheit-ingest".into(), hash: "$7$101$aW5nZXN0$aGFzaA==".into() },
            gateway: Some(BrokerUser { name: "hoheit-gateway".into(), hash: "$7$101$Z2F0ZQ==$aGFzaA==".into() }),
        };
        let files = render(
            &root,
            &services,
            &[key("0123456789abcdef", "stadt")],
            &WriteScope::default(),
            "2026-11-25T10:00:00Z",
        );
        assert!(files.password_file.contains("\nhoheit-gateway:$7$101$Z2F0ZQ==$aGFzaA==\n"));
        let rules: Vec<&str> = files.acl_file.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert_eq!(
            rules,
            [
                "user hoheit-ingest",
                "topic read hoheit/v1/#",
                "topic read v1.1/+/Observations",
                "user hoheit-gateway",
                "topic write hoheit/v1/#",
                "user hoh_0123456789abcdef",
                "topic write hoheit/v1/stadt/#",
            ]
        );
    }

    #[test]
    fn roots_and_user_names_that_would_break_the_files_are_refused() {
        for root in ["", "/hoheit", "hoheit/", "hoheit//v1", "hoheit/+", "hoheit/#", "hoheit v1", "a\nb"] {
            assert!(TopicRoot::parse(root).is_err(), "{root:?}");
        }
        assert!(TopicRoot::parse("test-1/hoheit/v1").is_ok());
        for name in ["", "a:b", " ingest", "ingest\n", "hoh_ingest"] {
            assert!(ServiceUserName::parse(name).is_err(), "{name:?}");
        }
        assert!(ServiceUserName::parse("hoheit-ingest").is_ok());
    }

    #[test]
    fn malformed_stored_credentials_are_reported_not_written() {
        let cases = [
            ("hoh_0123", "$7$101$a$b", "stadt"),
            ("hoh_0123456789abcdef", "plain", "stadt"),
            ("hoh_0123456789abcdef", "$7$101$a\nuser evil$b", "stadt"),
            ("hoh_0123456789abcdef", "$7$101$a$b", "Not A Slug"),
        ];
        for (name, hash, org) in cases {
            assert!(KeyUser::from_credential(credential(name, hash, org, "publisher")).is_err(), "{name} {hash} {org}");
        }
    }
}
