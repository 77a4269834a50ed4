//! The simulated town: Eberswalde's two organisations, their things (each
//! with its device's external id: a LoRaWAN DevEUI or a sensor.community
//! chip) and datastreams, and the curves that give every datastream
//! plausible values.
//!
//! Every value is a pure function of (seed, thing, time): no state, no
//! generator. So the backfill is repeatable (a restart publishes the same
//! history, which ingest de-duplicates), live values continue the same curves,
//! and tests can ask for any instant.
//!
//! Times of day are Eberswalde's local time (CET/CEST), because that is what
//! rush hours and shop hours follow.

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Timelike, Utc, Weekday};
use hoheit_domain::{Slug, SlugError};

pub mod noise;

use crate::noise::{stable_hash, Noise};

/// The municipality.
pub const STADT: &str = "stadt-eberswalde";
/// The municipal utility, which runs the parking garages.
pub const STADTWERKE: &str = "stadtwerke-eberswalde";

/// An organisation to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub slug: Slug,
    pub name: String,
}

/// The kinds of things in the town; each has fixed properties and a payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    TrafficCounter,
    AirStation,
    ParkingGarage,
    RiverGauge,
}

/// How a kind of thing publishes (all three formats ingest accepts are used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"time", "value"}` objects on the datastream topic.
    PlainJson,
    /// A SenML pack on the thing topic, one record per property.
    Senml,
    /// A protobuf `ObservationBatch` on the thing topic, property per reading.
    Protobuf,
}

/// A property a kind of thing measures, as registered and as published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Property {
    /// Property slug (last topic segment, SenML name, protobuf property).
    pub slug: &'static str,
    /// Human-readable datastream name.
    pub name: &'static str,
    /// Unit symbol; payloads carry exactly this string.
    pub unit: &'static str,
    /// The plausible range the device type declares: every value the curves
    /// give lies within it (inclusive). A bound only where the curve has one
    /// by construction (a clamp, a count); none where weather decides.
    pub min: Option<f64>,
    pub max: Option<f64>,
}

const TRAFFIC_PROPERTIES: &[Property] =
    &[Property { slug: "vehicles", name: "Fahrzeuge je 5 Minuten", unit: "count", min: Some(0.0), max: None }];
const AIR_PROPERTIES: &[Property] = &[
    Property { slug: "no2", name: "Stickstoffdioxid (NO2)", unit: "ug/m3", min: Some(0.0), max: None },
    Property { slug: "pm10", name: "Feinstaub PM10", unit: "ug/m3", min: Some(0.0), max: None },
    Property { slug: "pm2_5", name: "Feinstaub PM2,5", unit: "ug/m3", min: Some(0.0), max: None },
    Property { slug: "temperature", name: "Lufttemperatur", unit: "Cel", min: None, max: None },
    Property { slug: "humidity", name: "Relative Luftfeuchte", unit: "%RH", min: Some(0.0), max: Some(100.0) },
];
const PARKING_PROPERTIES: &[Property] = &[
    Property { slug: "occupancy", name: "Belegung", unit: "%", min: Some(0.0), max: Some(100.0) },
    Property { slug: "free", name: "Freie Stellplätze", unit: "count", min: Some(0.0), max: None },
];
const GAUGE_PROPERTIES: &[Property] =
    &[Property { slug: "level", name: "Wasserstand", unit: "cm", min: None, max: None }];

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::TrafficCounter, Kind::AirStation, Kind::ParkingGarage, Kind::RiverGauge];

    /// The slug of the device type the simulator registers for this kind.
    pub fn type_slug(self) -> &'static str {
        match self {
            Kind::TrafficCounter => "verkehrszaehler",
            Kind::AirStation => "luftmessstation",
            Kind::ParkingGarage => "parkhaus",
            Kind::RiverGauge => "pegel",
        }
    }

    /// The device type's human-readable name.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::TrafficCounter => "Verkehrszähler",
            Kind::AirStation => "Luftmessstation",
            Kind::ParkingGarage => "Parkhaus",
            Kind::RiverGauge => "Pegel",
        }
    }

    /// The properties, in the order [`Thing::observe`] returns their values.
    pub fn properties(self) -> &'static [Property] {
        match self {
            Kind::TrafficCounter => TRAFFIC_PROPERTIES,
            Kind::AirStation => AIR_PROPERTIES,
            Kind::ParkingGarage => PARKING_PROPERTIES,
            Kind::RiverGauge => GAUGE_PROPERTIES,
        }
    }

    /// The natural step between readings, used by the backfill: traffic
    /// counters count per 5 minutes, everything else reports every 10.
    pub fn step_secs(self) -> i64 {
        match self {
            Kind::TrafficCounter => 300,
            _ => 600,
        }
    }

    pub fn format(self) -> Format {
        match self {
            Kind::TrafficCounter | Kind::RiverGauge => Format::PlainJson,
            Kind::AirStation => Format::Senml,
            Kind::ParkingGarage => Format::Protobuf,
        }
    }

    /// The device behind a thing of this kind when it does not speak
    /// Hoheit's own formats: the counters, garages and the gauge are LoRaWAN
    /// sensors, the air stations sensor.community (airrohr) kits.
    pub fn device(self) -> Device {
        match self {
            Kind::AirStation => Device::Airrohr,
            Kind::TrafficCounter | Kind::ParkingGarage | Kind::RiverGauge => Device::Lorawan,
        }
    }
}

/// What kind of device a thing is, which decides its external id and the
/// doors besides Hoheit's own that can carry its readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Known by its DevEUI; its uplinks arrive through a network server
    /// (ChirpStack, The Things Stack).
    Lorawan,
    /// A sensor.community kit known as `esp8266-<chip id>`, posting to "an own API".
    Airrohr,
}

impl Device {
    /// The external id of the `serial`-th thing of the town (1-based, unique
    /// in the town), as the registry stores it (lower case): a DevEUI in a
    /// locally administered EUI-64 block (`02ebe5…`), or an ESP8266 chip id
    /// (24 bits, like the firmware's `ESP.getChipId()`).
    pub fn external_id(self, serial: u32) -> String {
        match self {
            Device::Lorawan => format!("02ebe5{:010x}", serial),
            Device::Airrohr => format!("esp8266-{}", 10_000_000 + serial),
        }
    }
}

/// Who parks in a garage, which decides when it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Next to the station: full on working days, office hours.
    Commuters,
    /// In the centre: fills during shopping hours, busiest on Saturdays, empty on Sundays.
    Shoppers,
}

/// What a thing measures, with the parameters of its curves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sensor {
    /// `peak`: vehicles per 5 minutes in the weekday morning rush hour.
    Traffic {
        peak: f64,
    },
    /// `exposure`: share of road traffic in the NO2 (1 = kerbside, 0 = background);
    /// `heat_island`: kelvin above the regional temperature.
    Air {
        exposure: f64,
        heat_island: f64,
    },
    Parking {
        capacity: u32,
        usage: Usage,
    },
    /// `mean_cm`: the regulated water level of the canal reach.
    Gauge {
        mean_cm: f64,
    },
}

impl Sensor {
    pub fn kind(&self) -> Kind {
        match self {
            Sensor::Traffic { .. } => Kind::TrafficCounter,
            Sensor::Air { .. } => Kind::AirStation,
            Sensor::Parking { .. } => Kind::ParkingGarage,
            Sensor::Gauge { .. } => Kind::RiverGauge,
        }
    }

    /// The same sensor with its size scaled (for the extra copies of `--scale`).
    fn scaled(self, factor: f64) -> Self {
        match self {
            Sensor::Traffic { peak } => Sensor::Traffic { peak: (peak * factor).round() },
            Sensor::Air { exposure, heat_island } => {
                Sensor::Air { exposure: (exposure * factor).min(1.0), heat_island }
            }
            Sensor::Parking { capacity, usage } => {
                Sensor::Parking { capacity: ((f64::from(capacity) * factor).round() as u32).max(20), usage }
            }
            Sensor::Gauge { mean_cm } => Sensor::Gauge { mean_cm: (mean_cm * factor).round() },
        }
    }
}

/// A thing to register and publish for.
#[derive(Debug, Clone)]
pub struct Thing {
    pub org: Slug,
    pub slug: Slug,
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    pub sensor: Sensor,
    /// The device's identity outside Hoheit (see [`Device::external_id`]),
    /// registered as the thing's external id.
    pub external_id: String,
    /// Stable hash of the slug: the thing's identity for the noise.
    key: u64,
}

impl Thing {
    pub fn kind(&self) -> Kind {
        self.sensor.kind()
    }

    pub fn properties(&self) -> &'static [Property] {
        self.kind().properties()
    }

    pub fn device(&self) -> Device {
        self.kind().device()
    }

    /// The values of every property at `time`, in the order of [`Thing::properties`].
    pub fn observe(&self, seed: u64, time: DateTime<Utc>) -> Vec<f64> {
        let noise = Noise::new(seed, self.key);
        match self.sensor {
            Sensor::Traffic { peak } => vec![vehicles(peak, noise, time)],
            Sensor::Air { exposure, heat_island } => {
                let a = air(exposure, heat_island, noise, regional_weather(seed), time);
                vec![a.no2, a.pm10, a.pm2_5, a.temperature, a.humidity]
            }
            Sensor::Parking { capacity, usage } => {
                let p = parking(capacity, usage, noise, time);
                vec![p.occupancy, f64::from(p.free)]
            }
            Sensor::Gauge { mean_cm } => vec![river_level(mean_cm, noise, time)],
        }
    }
}

/// The town: organisations and things, in registration order.
#[derive(Debug, Clone)]
pub struct Town {
    pub organisations: Vec<Organisation>,
    pub things: Vec<Thing>,
}

/// One thing of the base town.
struct Template {
    org: &'static str,
    slug: &'static str,
    name: &'static str,
    latitude: f64,
    longitude: f64,
    sensor: Sensor,
}

const TEMPLATES: &[Template] = &[
    // Traffic counters of the municipality, from the B167 through-road to a feeder street.
    Template {
        org: STADT,
        slug: "zaehlstelle-eisenbahnstrasse",
        name: "Zählstelle Eisenbahnstraße (B167)",
        latitude: 52.8318,
        longitude: 13.8050,
        sensor: Sensor::Traffic { peak: 150.0 },
    },
    Template {
        org: STADT,
        slug: "zaehlstelle-heegermuehler-strasse",
        name: "Zählstelle Heegermühler Straße",
        latitude: 52.8347,
        longitude: 13.7720,
        sensor: Sensor::Traffic { peak: 120.0 },
    },
    Template {
        org: STADT,
        slug: "zaehlstelle-breite-strasse",
        name: "Zählstelle Breite Straße",
        latitude: 52.8352,
        longitude: 13.8292,
        sensor: Sensor::Traffic { peak: 85.0 },
    },
    Template {
        org: STADT,
        slug: "zaehlstelle-angermuender-strasse",
        name: "Zählstelle Angermünder Straße",
        latitude: 52.8431,
        longitude: 13.8376,
        sensor: Sensor::Traffic { peak: 60.0 },
    },
    // Air-quality stations: kerbside, centre, residential background.
    Template {
        org: STADT,
        slug: "luft-eisenbahnstrasse",
        name: "Luftmessstation Eisenbahnstraße",
        latitude: 52.8320,
        longitude: 13.8080,
        sensor: Sensor::Air { exposure: 1.0, heat_island: 0.6 },
    },
    Template {
        org: STADT,
        slug: "luft-marktplatz",
        name: "Luftmessstation Marktplatz",
        latitude: 52.8336,
        longitude: 13.8310,
        sensor: Sensor::Air { exposure: 0.55, heat_island: 0.8 },
    },
    Template {
        org: STADT,
        slug: "luft-brandenburgisches-viertel",
        name: "Luftmessstation Brandenburgisches Viertel",
        latitude: 52.8490,
        longitude: 13.7600,
        sensor: Sensor::Air { exposure: 0.2, heat_island: 0.0 },
    },
    // Parking garages of the Stadtwerke.
    Template {
        org: STADTWERKE,
        slug: "parkhaus-bahnhof",
        name: "Parkhaus am Bahnhof",
        latitude: 52.8306,
        longitude: 13.7895,
        sensor: Sensor::Parking { capacity: 320, usage: Usage::Commuters },
    },
    Template {
        org: STADTWERKE,
        slug: "parkhaus-paul-wunderlich-haus",
        name: "Parkhaus Paul-Wunderlich-Haus",
        latitude: 52.8340,
        longitude: 13.8300,
        sensor: Sensor::Parking { capacity: 180, usage: Usage::Shoppers },
    },
    Template {
        org: STADTWERKE,
        slug: "parkhaus-friedrich-ebert-strasse",
        name: "Parkhaus Friedrich-Ebert-Straße",
        latitude: 52.8328,
        longitude: 13.8265,
        sensor: Sensor::Parking { capacity: 240, usage: Usage::Shoppers },
    },
    // The gauge at the town lock of the Finowkanal.
    Template {
        org: STADT,
        slug: "pegel-finowkanal-stadtschleuse",
        name: "Pegel Finowkanal Stadtschleuse",
        latitude: 52.8319,
        longitude: 13.8218,
        sensor: Sensor::Gauge { mean_cm: 200.0 },
    },
];

impl Town {
    /// The largest accepted `scale` (keeps slugs short and the registry sane).
    pub const MAX_SCALE: u32 = 10_000;

    /// Eberswalde with `scale` copies of every thing (at least one): copy 1
    /// is the base town, copy `n` gets the slug suffix `-n`, a nearby
    /// position and somewhat different parameters.
    pub fn eberswalde(scale: u32) -> Result<Self, SlugError> {
        let organisations = vec![
            Organisation { slug: Slug::parse("organisation", STADT)?, name: "Stadt Eberswalde".into() },
            Organisation { slug: Slug::parse("organisation", STADTWERKE)?, name: "Stadtwerke Eberswalde GmbH".into() },
        ];
        let mut things = Vec::with_capacity(TEMPLATES.len() * scale.max(1) as usize);
        for copy in 1..=scale.clamp(1, Self::MAX_SCALE) {
            for template in TEMPLATES {
                let (slug, name) = if copy == 1 {
                    (template.slug.to_owned(), template.name.to_owned())
                } else {
                    (format!("{}-{copy}", template.slug), format!("{} {copy}", template.name))
                };
                let key = stable_hash(&slug);
                let (latitude, longitude, sensor) = if copy == 1 {
                    (template.latitude, template.longitude, template.sensor)
                } else {
                    // Within about a kilometre of the original, sized 75–125 %.
                    let noise = Noise::new(0, key);
                    (
                        template.latitude + (noise.uniform(0) - 0.5) * 0.018,
                        template.longitude + (noise.uniform(1) - 0.5) * 0.03,
                        template.sensor.scaled(0.75 + noise.uniform(2) * 0.5),
                    )
                };
                let serial = things.len() as u32 + 1;
                things.push(Thing {
                    org: Slug::parse("organisation", template.org)?,
                    slug: Slug::parse("thing", &slug)?,
                    name,
                    latitude: round_to(latitude, 5),
                    longitude: round_to(longitude, 5),
                    sensor,
                    external_id: template.sensor.kind().device().external_id(serial),
                    key,
                });
            }
        }
        Ok(Self { organisations, things })
    }

    /// Every datastream: (thing, property), in registration order.
    pub fn datastreams(&self) -> impl Iterator<Item = (&Thing, &'static Property)> + '_ {
        self.things.iter().flat_map(|thing| thing.properties().iter().map(move |p| (thing, p)))
    }

    pub fn datastream_count(&self) -> usize {
        self.things.iter().map(|t| t.properties().len()).sum()
    }
}

// ------------------------------------------------------------------ local time

/// A moment as Eberswalde's clocks show it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalTime {
    /// Hour of the day with fraction, `0.0..24.0`.
    pub hour: f64,
    pub weekday: Weekday,
    /// 1 = 1 January.
    pub day_of_year: u32,
}

/// The last Sunday of `month` (March or October: both have 31 days) at 01:00 UTC,
/// when the EU switches between CET and CEST.
fn eu_switch(year: i32, month: u32) -> Option<DateTime<Utc>> {
    let last = NaiveDate::from_ymd_opt(year, month, 31)?;
    let sunday = last.checked_sub_days(Days::new(u64::from(last.weekday().num_days_from_sunday())))?;
    Some(Utc.from_utc_datetime(&sunday.and_hms_opt(1, 0, 0)?))
}

/// Eberswalde's local time (Europe/Berlin) at `time`.
pub fn local_time(time: DateTime<Utc>) -> LocalTime {
    let summer = match (eu_switch(time.year(), 3), eu_switch(time.year(), 10)) {
        (Some(start), Some(end)) => time >= start && time < end,
        _ => false,
    };
    let local = time + chrono::Duration::hours(if summer { 2 } else { 1 });
    LocalTime {
        hour: f64::from(local.hour()) + f64::from(local.minute()) / 60.0 + f64::from(local.second()) / 3600.0,
        weekday: local.weekday(),
        day_of_year: local.ordinal(),
    }
}

// ------------------------------------------------------------------ curve helpers

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn bell(x: f64, centre: f64, width: f64) -> f64 {
    (-0.5 * ((x - centre) / width).powi(2)).exp()
}

/// About 1 between `open` and `close` (hours), with soft edges.
fn window(hour: f64, open: f64, close: f64) -> f64 {
    sigmoid((hour - open) / 0.6) * sigmoid((close - hour) / 0.8)
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

fn seconds(time: DateTime<Utc>) -> f64 {
    time.timestamp_micros() as f64 / 1e6
}

/// 1 in mid-January, 0 in mid-July.
fn coldness(day_of_year: u32) -> f64 {
    (1.0 + (std::f64::consts::TAU * (f64::from(day_of_year) - 18.0) / 365.25).cos()) / 2.0
}

// ------------------------------------------------------------------ curves

/// Relative traffic volume (1 ≈ the weekday morning rush hour): morning and
/// evening peaks on working days (Friday's earlier), a late, lower hump on
/// Saturdays, little on Sundays, almost nothing at night.
pub fn traffic_profile(local: &LocalTime) -> f64 {
    let h = local.hour;
    let night = 0.04;
    match local.weekday {
        Weekday::Sat => night + 0.55 * window(h, 8.0, 19.5) + 0.15 * bell(h, 12.0, 2.0),
        Weekday::Sun => 0.03 + 0.38 * window(h, 9.5, 19.5) + 0.06 * bell(h, 16.0, 2.0),
        Weekday::Fri => night + 0.5 * window(h, 5.8, 20.5) + 0.5 * bell(h, 7.4, 0.8) + 0.45 * bell(h, 15.3, 1.6),
        _ => night + 0.5 * window(h, 5.8, 20.5) + 0.55 * bell(h, 7.4, 0.8) + 0.45 * bell(h, 16.6, 1.3),
    }
}

/// Vehicles counted in the 5 minutes up to `time` (a whole number ≥ 0).
pub fn vehicles(peak: f64, noise: Noise, time: DateTime<Utc>) -> f64 {
    let t = seconds(time);
    let local = local_time(time);
    // Some days are busier than others; counts scatter like a Poisson count.
    let busy = (1.0 + 0.08 * noise.stream("busy").smooth(t, 6.0 * 3600.0)).max(0.5);
    let mean = peak * traffic_profile(&local) * busy;
    let scatter = mean.sqrt() * (0.6 * noise.smooth(t, 300.0) + 0.8 * noise.gaussian(time.timestamp_micros()));
    (mean + scatter).round().max(0.0)
}

/// Long-term mean temperature (°C) of the region on `day_of_year`: about 0 °C
/// in January, 19 °C in July.
pub fn seasonal_temperature(day_of_year: u32) -> f64 {
    9.3 - 9.6 * (std::f64::consts::TAU * (f64::from(day_of_year) - 18.0) / 365.25).cos()
}

/// One air-quality reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Air {
    /// µg/m³
    pub no2: f64,
    /// µg/m³
    pub pm10: f64,
    /// µg/m³, never above `pm10`.
    pub pm2_5: f64,
    /// °C
    pub temperature: f64,
    /// %RH
    pub humidity: f64,
}

/// The weather is the same all over town: its noise depends on the seed only,
/// so that the stations agree with each other.
pub fn regional_weather(seed: u64) -> Noise {
    Noise::new(seed, stable_hash("eberswalde/weather"))
}

/// Air quality and weather at a station. NO2 follows the traffic (more at a
/// kerbside station, more in winter and in calm weather); particles follow
/// the weather and winter heating; humidity falls as the temperature rises.
/// `noise` is the station's own, `regional` the town's weather ([`regional_weather`]).
pub fn air(exposure: f64, heat_island: f64, noise: Noise, regional: Noise, time: DateTime<Utc>) -> Air {
    let t = seconds(time);
    let i = time.timestamp_micros();
    let local = local_time(time);
    let cold = coldness(local.day_of_year);
    // Calm, stagnant weather (factor > 1) concentrates pollutants.
    let dispersion = (0.35 * regional.smooth(t, 8.0 * 3600.0)).exp();

    let traffic = traffic_profile(&local);
    let no2 =
        (7.0 + 4.0 * cold + exposure * 38.0 * traffic) * dispersion * (1.0 + 0.05 * noise.stream("no2").gaussian(i));
    let heating = cold * 4.0 * bell(local.hour, 20.0, 3.0);
    let pm10 =
        (11.0 + 5.0 * cold + heating + exposure * 8.0 * traffic) * dispersion + 1.5 * noise.stream("pm10").gaussian(i);
    let pm10 = round_to(pm10.max(1.0), 1);
    let fine_share = 0.55 + 0.15 * cold + 0.03 * noise.stream("pm2_5").gaussian(i);
    let pm2_5 = round_to((pm10 * fine_share).clamp(0.5, pm10), 1);

    let amplitude = 3.5 + 2.5 * (1.0 - cold);
    let diurnal = amplitude * (std::f64::consts::TAU * (local.hour - 15.0) / 24.0).cos();
    let weather = 3.0 * regional.stream("temperature").smooth(t, 36.0 * 3600.0)
        + 1.0 * regional.stream("showers").smooth(t, 4.0 * 3600.0);
    let deviation = diurnal + weather;
    let temperature = seasonal_temperature(local.day_of_year)
        + heat_island
        + deviation
        + 0.1 * noise.stream("temperature").gaussian(i);
    let humidity = 72.0 + 12.0 * cold - 3.2 * deviation
        + 4.0 * regional.stream("humidity").smooth(t, 12.0 * 3600.0)
        + 0.5 * noise.stream("humidity").gaussian(i)
        - 2.0 * heat_island;

    Air {
        no2: round_to(no2.max(0.5), 1),
        pm10,
        pm2_5,
        temperature: round_to(temperature, 1),
        humidity: round_to(humidity.clamp(20.0, 100.0), 1),
    }
}

/// One parking-garage reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parking {
    pub capacity: u32,
    pub occupied: u32,
    /// `capacity - occupied`.
    pub free: u32,
    /// Occupied share in percent, one decimal.
    pub occupancy: f64,
}

/// How full a garage is, as a share of its capacity (before noise).
pub fn parking_profile(usage: Usage, local: &LocalTime) -> f64 {
    let h = local.hour;
    match (usage, local.weekday) {
        (Usage::Commuters, Weekday::Sat) => 0.08 + 0.35 * window(h, 9.0, 18.0),
        (Usage::Commuters, Weekday::Sun) => 0.06 + 0.15 * window(h, 10.0, 19.0),
        (Usage::Commuters, _) => 0.08 + 0.82 * window(h, 6.3, 17.8),
        // Shops close on Sundays in Brandenburg.
        (Usage::Shoppers, Weekday::Sat) => 0.05 + 0.85 * window(h, 9.0, 17.5),
        (Usage::Shoppers, Weekday::Sun) => 0.03 + 0.12 * window(h, 11.0, 18.0),
        (Usage::Shoppers, _) => 0.05 + 0.55 * window(h, 8.5, 19.5) + 0.2 * bell(h, 16.5, 1.5),
    }
}

pub fn parking(capacity: u32, usage: Usage, noise: Noise, time: DateTime<Utc>) -> Parking {
    let t = seconds(time);
    let share =
        parking_profile(usage, &local_time(time)) + 0.04 * noise.smooth(t, 45.0 * 60.0) + 0.01 * noise.smooth(t, 600.0);
    let occupied = (share.clamp(0.0, 1.0) * f64::from(capacity)).round() as u32;
    let occupied = occupied.min(capacity);
    let occupancy = if capacity == 0 { 0.0 } else { round_to(100.0 * f64::from(occupied) / f64::from(capacity), 1) };
    Parking { capacity, occupied, free: capacity - occupied, occupancy }
}

/// The warning mark of the demo's gauges (cm): the regulated level stays
/// below it; only a [`river_rise`] passes it.
pub const GAUGE_WARNING_CM: f64 = 215.0;

/// Water level (cm) of a regulated canal reach: a little higher in spring,
/// drifting slowly over days and hours, now and then rising for an hour or
/// two ([`river_rise`]), with a few millimetres of sensor noise.
pub fn river_level(mean_cm: f64, noise: Noise, time: DateTime<Utc>) -> f64 {
    let t = seconds(time);
    let local = local_time(time);
    let spring = 4.0 * (std::f64::consts::TAU * (f64::from(local.day_of_year) - 80.0) / 365.25).cos();
    let level = mean_cm
        + spring
        + 5.0 * noise.smooth(t, 4.0 * 86_400.0)
        + 1.5 * noise.stream("hours").smooth(t, 10.0 * 3600.0)
        + river_rise(noise.stream("rise"), t)
        + 0.3 * noise.gaussian(time.timestamp_micros());
    round_to(level, 1)
}

/// A rise of the reach (rain upstream, the lock's sluices): one in three
/// two-hour slots holds one of 20 to 35 cm, peaking somewhere in its middle
/// and coming and going within about two hours (a bell of 30 minutes'
/// width). What the demo's warning rule on the gauge fires on.
pub fn river_rise(noise: Noise, t_secs: f64) -> f64 {
    const SLOT_SECS: f64 = 7200.0;
    let slot = (t_secs / SLOT_SECS).floor() as i64;
    // A rise near a slot's edge reaches into its neighbours.
    (slot - 1..=slot + 1)
        .filter(|&s| noise.uniform(s) < 1.0 / 3.0)
        .map(|s| {
            let peak = (s as f64 + 0.25 + 0.5 * noise.stream("peak").uniform(s)) * SLOT_SECS;
            let height = 20.0 + 15.0 * noise.stream("height").uniform(s);
            height * bell(t_secs, peak, 1800.0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2025-11-24 00:00 local (CET).
    fn monday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 11, 23, 23, 0, 0).unwrap()
    }

    /// Every 5 minutes for a week from `start`.
    fn week_from(start: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
        (0..7 * 288).map(move |i| start + chrono::Duration::minutes(5 * i))
    }

    #[test]
    fn external_ids_are_deterministic_unique_and_what_each_door_expects() {
        let town = Town::eberswalde(Town::MAX_SCALE).unwrap();
        let mut ids: Vec<&str> = town.things.iter().map(|t| t.external_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), town.things.len(), "one external id per thing");
        for thing in &town.things {
            let id = &thing.external_id;
            match thing.device() {
                Device::Lorawan => {
                    assert!(id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{id}")
                }
                Device::Airrohr => {
                    let chip: u32 = id.strip_prefix("esp8266-").and_then(|c| c.parse().ok()).unwrap_or(u32::MAX);
                    assert!(chip < 1 << 24, "{id}: a chip id has 24 bits");
                }
            }
        }
        let again = Town::eberswalde(1).unwrap();
        assert_eq!(again.things[0].external_id, "02ebe50000000001");
        assert_eq!(again.things[4].external_id, "esp8266-10000005");
        assert_eq!(again.things[4].kind(), Kind::AirStation);
    }

    #[test]
    fn base_town_has_the_expected_things_and_datastreams() {
        let town = Town::eberswalde(1).unwrap();
        let count = |kind| town.things.iter().filter(|t| t.kind() == kind).count();
        assert_eq!(
            [count(Kind::TrafficCounter), count(Kind::AirStation), count(Kind::ParkingGarage), count(Kind::RiverGauge)],
            [4, 3, 3, 1]
        );
        assert_eq!(town.datastream_count(), 26);
        assert_eq!(town.organisations.len(), 2);
        for thing in &town.things {
            assert!(
                (52.80..52.87).contains(&thing.latitude) && (13.70..13.90).contains(&thing.longitude),
                "{}",
                thing.slug
            );
            let expected_org = if thing.kind() == Kind::ParkingGarage { STADTWERKE } else { STADT };
            assert_eq!(thing.org.as_str(), expected_org);
        }
    }

    #[test]
    fn scale_multiplies_things_with_unique_slugs() {
        let town = Town::eberswalde(25).unwrap();
        assert_eq!(town.things.len(), 25 * 11);
        assert_eq!(town.datastream_count(), 25 * 26);
        let mut slugs: Vec<_> = town.things.iter().map(|t| t.slug.as_str()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), 25 * 11);
        assert!(slugs.contains(&"parkhaus-bahnhof-25"));
        // The base town is the first copy, unchanged by the scale.
        let base = Town::eberswalde(1).unwrap();
        assert_eq!(town.things[0].sensor, base.things[0].sensor);
        assert!(Town::eberswalde(Town::MAX_SCALE).is_ok());
    }

    #[test]
    fn local_time_follows_cet_and_cest() {
        let winter = local_time(Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap());
        assert_eq!(winter.hour, 13.0);
        let summer = local_time(Utc.with_ymd_and_hms(2025, 7, 15, 12, 30, 0).unwrap());
        assert_eq!(summer.hour, 14.5);
        // 2025: CEST from 30 March 01:00 UTC to 26 October 01:00 UTC.
        assert_eq!(local_time(Utc.with_ymd_and_hms(2025, 3, 30, 0, 59, 0).unwrap()).hour, 1.0 + 59.0 / 60.0);
        assert_eq!(local_time(Utc.with_ymd_and_hms(2025, 3, 30, 1, 0, 0).unwrap()).hour, 3.0);
        assert_eq!(local_time(Utc.with_ymd_and_hms(2025, 10, 26, 1, 0, 0).unwrap()).hour, 2.0);
        assert_eq!(monday_local().weekday, Weekday::Mon);
    }

    fn monday_local() -> LocalTime {
        local_time(monday())
    }

    #[test]
    fn traffic_has_rush_hours_quiet_nights_and_quieter_weekends() {
        let town = Town::eberswalde(2).unwrap();
        for start in [monday(), Utc.with_ymd_and_hms(2025, 6, 15, 22, 0, 0).unwrap()] {
            for thing in town.things.iter().filter(|t| t.kind() == Kind::TrafficCounter) {
                let Sensor::Traffic { peak } = thing.sensor else { unreachable!() };
                let mut per_day = [0.0; 7];
                let (mut rush, mut night) = (0.0, 0.0);
                for time in week_from(start) {
                    let value = thing.observe(42, time)[0];
                    assert!(value >= 0.0 && value.fract() == 0.0, "{value}");
                    assert!(value < peak * 2.0, "{value} at {time}");
                    let local = local_time(time);
                    per_day[local.weekday.num_days_from_monday() as usize] += value;
                    let working_day = local.weekday.num_days_from_monday() < 5;
                    if working_day && (7.0..8.0).contains(&local.hour) {
                        rush += value;
                    }
                    if working_day && (3.0..4.0).contains(&local.hour) {
                        night += value;
                    }
                }
                assert!(rush > 5.0 * night, "{}: rush {rush}, night {night}", thing.slug);
                let weekday_mean = per_day[..5].iter().sum::<f64>() / 5.0;
                assert!(per_day[5] < weekday_mean && per_day[6] < per_day[5], "{}: {per_day:?}", thing.slug);
            }
        }
    }

    #[test]
    fn traffic_at_rush_hour_beats_three_in_the_morning_every_working_day() {
        let thing = &Town::eberswalde(1).unwrap().things[3]; // the quietest counter
        for day in 0..5 {
            let three = monday() + chrono::Duration::hours(24 * day + 3);
            let rush = monday() + chrono::Duration::minutes(60 * 24 * day + 7 * 60 + 30);
            assert!(thing.observe(42, rush)[0] > thing.observe(42, three)[0]);
        }
    }

    #[test]
    fn air_quality_and_weather_stay_plausible_in_every_season() {
        let town = Town::eberswalde(2).unwrap();
        let starts = [
            monday(),
            Utc.with_ymd_and_hms(2025, 7, 13, 22, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 18, 23, 0, 0).unwrap(),
        ];
        for start in starts {
            for thing in town.things.iter().filter(|t| t.kind() == Kind::AirStation) {
                let (mut afternoon_rh, mut night_rh) = (0.0, 0.0);
                for time in week_from(start) {
                    let v = thing.observe(42, time);
                    let [no2, pm10, pm2_5, temperature, humidity] = v[..] else { panic!("five values") };
                    assert!((0.5..=200.0).contains(&no2), "no2 {no2}");
                    assert!((1.0..=150.0).contains(&pm10), "pm10 {pm10}");
                    assert!(pm2_5 > 0.0 && pm2_5 <= pm10, "pm2_5 {pm2_5} pm10 {pm10}");
                    assert!((-25.0..=40.0).contains(&temperature), "temperature {temperature}");
                    assert!((20.0..=100.0).contains(&humidity), "humidity {humidity}");
                    let hour = local_time(time).hour;
                    if (14.0..16.0).contains(&hour) {
                        afternoon_rh += humidity;
                    }
                    if (3.0..5.0).contains(&hour) {
                        night_rh += humidity;
                    }
                }
                assert!(afternoon_rh < night_rh, "humidity must fall as it gets warmer");
            }
        }
        // Summer is warmer than winter.
        let station = &town.things[4];
        let mean = |start: DateTime<Utc>| week_from(start).map(|t| station.observe(42, t)[3]).sum::<f64>() / 2016.0;
        assert!(mean(starts[1]) > mean(starts[2]) + 10.0);
    }

    #[test]
    fn no2_follows_traffic() {
        let kerbside = &Town::eberswalde(1).unwrap().things[4];
        let at = |hours: i64, minutes: i64| {
            kerbside.observe(42, monday() + chrono::Duration::minutes(hours * 60 + minutes))[0]
        };
        let rush: f64 = (0..5).map(|day| at(24 * day + 7, 30)).sum();
        let night: f64 = (0..5).map(|day| at(24 * day + 3, 0)).sum();
        assert!(rush > 1.5 * night, "rush {rush} night {night}");
    }

    #[test]
    fn parking_stays_within_capacity_and_fills_during_shopping_hours() {
        let town = Town::eberswalde(3).unwrap();
        for thing in town.things.iter().filter(|t| t.kind() == Kind::ParkingGarage) {
            let Sensor::Parking { capacity, usage } = thing.sensor else { unreachable!() };
            let (mut busy, mut quiet) = (0.0, 0.0);
            for time in week_from(monday()) {
                let p = parking(capacity, usage, Noise::new(42, thing.key), time);
                assert!((0.0..=100.0).contains(&p.occupancy), "{p:?}");
                assert_eq!(p.free, capacity - p.occupied);
                assert!((p.occupancy / 100.0 * f64::from(capacity) - f64::from(p.occupied)).abs() < 0.5, "{p:?}");
                assert_eq!(thing.observe(42, time), vec![p.occupancy, f64::from(p.free)]);
                let local = local_time(time);
                if local.weekday == Weekday::Wed && (11.0..13.0).contains(&local.hour) {
                    busy += p.occupancy;
                }
                if local.weekday == Weekday::Wed && (2.0..4.0).contains(&local.hour) {
                    quiet += p.occupancy;
                }
            }
            assert!(busy > 2.0 * quiet, "{}: busy {busy} quiet {quiet}", thing.slug);
        }
    }

    #[test]
    fn river_level_varies_slowly() {
        let gauge = &Town::eberswalde(1).unwrap().things[10];
        let levels: Vec<f64> = week_from(monday()).map(|t| gauge.observe(42, t)[0]).collect();
        assert!(levels.iter().all(|l| (160.0..=260.0).contains(l)), "{levels:?}");
        let max_step = levels.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f64::max);
        assert!(max_step < 5.0, "a canal does not jump {max_step} cm in 5 minutes");
        let (min, max) = levels.iter().fold((f64::MAX, f64::MIN), |(lo, hi), l| (lo.min(*l), hi.max(*l)));
        assert!(max - min > 1.0, "the level must vary");
    }

    #[test]
    fn the_gauge_passes_its_warning_mark_now_and_then() {
        let gauge = &Town::eberswalde(1).unwrap().things[10];
        let levels: Vec<f64> = week_from(monday()).map(|t| gauge.observe(42, t)[0]).collect();
        let above = levels.iter().filter(|&&l| l > GAUGE_WARNING_CM).count();
        // Every 5 minutes for a week: 2016 readings. Rises of an hour or so, several a day.
        assert!(above > 50, "the warning mark is passed too rarely: {above} of {}", levels.len());
        assert!(above < levels.len() / 4, "the warning mark is passed too often: {above} of {}", levels.len());
        let rises = levels.windows(2).filter(|w| w[0] <= GAUGE_WARNING_CM && w[1] > GAUGE_WARNING_CM).count();
        assert!((7..=60).contains(&rises), "{rises} rises past the mark in a week");
    }

    #[test]
    fn values_are_deterministic_for_seed_and_time() {
        let town = Town::eberswalde(1).unwrap();
        let time = Utc.with_ymd_and_hms(2025, 11, 25, 10, 0, 0).unwrap();
        let again = Town::eberswalde(4).unwrap();
        for (a, b) in town.things.iter().zip(&again.things) {
            assert_eq!(a.observe(42, time), b.observe(42, time), "{}", a.slug);
        }
        let differs = town.things.iter().any(|t| t.observe(42, time) != t.observe(7, time));
        assert!(differs, "another seed gives other values");
    }

    #[test]
    fn every_value_is_finite() {
        let town = Town::eberswalde(2).unwrap();
        for time in week_from(monday()).step_by(7) {
            for thing in &town.things {
                let values = thing.observe(9, time);
                assert_eq!(values.len(), thing.properties().len());
                assert!(values.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn every_value_lies_in_its_property_range() {
        // Out-of-range readings are dead letters, so the ranges the device types
        // declare must hold for every copy of `--scale`, in every season.
        let town = Town::eberswalde(20).unwrap();
        let starts = [monday(), Utc.with_ymd_and_hms(2025, 7, 13, 22, 0, 0).unwrap()];
        for time in starts.into_iter().flat_map(|start| week_from(start).step_by(3)) {
            for thing in &town.things {
                for (value, p) in thing.observe(5, time).into_iter().zip(thing.properties()) {
                    assert!(p.min.is_none_or(|min| value >= min), "{} {}: {value}", thing.slug, p.slug);
                    assert!(p.max.is_none_or(|max| value <= max), "{} {}: {value}", thing.slug, p.slug);
                }
            }
        }
    }
}
