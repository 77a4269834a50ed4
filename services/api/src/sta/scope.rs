//! The part of Hoheit's tables one SensorThings query sees, as the access
//! gate decides it ([`CallerView`]): the datastreams whose metadata the
//! caller may see, and for observations those it may read raw over the
//! query's time range; both as the gate's [`Reach`] (every datastream, or
//! those of some datasets), not as a list of every id.

use chrono::{DateTime, Utc};
use hoheit_domain::policy::{ReadRequest, Resolution};
use hoheit_domain::DatastreamId;

use super::model::Entity;
use super::options::Options;
use super::sql::{self, Reach, View};
use crate::access::CallerView;

/// The caller's view for the queries of one request.
pub struct Scope<'a> {
    view: &'a CallerView,
    /// Datastreams whose metadata the caller may see.
    visible: Reach,
}

impl<'a> Scope<'a> {
    pub fn new(view: &'a CallerView) -> Self {
        Scope { view, visible: view.reach(None) }
    }

    /// Whether the caller may see the datastream `id`.
    pub fn shows(&self, id: i64) -> bool {
        self.view.shows(DatastreamId(id))
    }

    /// The view of a query of `entity`; for observations, the datastreams
    /// readable raw over `request`'s range (the whole time axis without one).
    pub fn of(&self, entity: Entity, request: Option<&ReadRequest>) -> View {
        let readable = if entity == Entity::Observations {
            let request = request.copied().unwrap_or_else(|| ReadRequest::spanning(Resolution::Raw, None, None));
            self.view.reach(Some(&request))
        } else {
            Reach::Ids(Vec::new())
        };
        View { datastreams: self.visible.clone(), readable }
    }
}

/// The read a query of observations makes: raw readings over the time its
/// `$filter` bounds (`phenomenonTime ge …`), the whole axis where it does not.
pub fn read_request(options: &Options) -> ReadRequest {
    let (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        options.filter.as_ref().map(sql::time_bounds).unwrap_or((None, None));
    ReadRequest::spanning(Resolution::Raw, from, to)
}
