//! The derive's records reach the registry at link time: these aggregates
//! are declared with the macros, as a user would.

use std::any::TypeId;

use serde::{Deserialize, Serialize};

use super::{all, owners_of};
use crate::{event, Aggregate, Apply};

#[event(name = "owners.Shared")]
struct Shared {}

#[event]
struct OnlyBeta {}

#[event]
struct Unlisted {}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "owners_beta", error = std::convert::Infallible, events(OnlyBeta, Shared), commands())]
struct Beta {}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "owners_alpha", error = std::convert::Infallible, events(Shared), commands())]
struct Alpha {}

impl Apply<Shared> for Alpha {
    fn apply(&mut self, _: &Shared) {}
}

impl Apply<Shared> for Beta {
    fn apply(&mut self, _: &Shared) {}
}

impl Apply<OnlyBeta> for Beta {
    fn apply(&mut self, _: &OnlyBeta) {}
}

#[test]
fn an_event_listed_by_two_aggregates_names_both_sorted() {
    assert_eq!(owners_of(TypeId::of::<Shared>()), ["owners_alpha", "owners_beta"]);
    assert_eq!(owners_of(TypeId::of::<OnlyBeta>()), [Beta::NAME]);
}

#[test]
fn an_event_no_aggregate_lists_has_no_owner() {
    assert!(owners_of(TypeId::of::<Unlisted>()).is_empty());
    assert!(owners_of(TypeId::of::<String>()).is_empty());
}

#[test]
fn each_listing_is_one_record_with_the_stored_type_name() {
    let shared: Vec<(&str, &str)> = all()
        .filter(|owner| owner.is_of(TypeId::of::<Shared>()))
        .map(|owner| (owner.aggregate(), owner.event_type()))
        .collect();
    assert_eq!(shared.len(), 2, "{shared:?}");
    assert!(shared.iter().all(|(_, event_type)| *event_type == "owners.Shared"), "{shared:?}");
}
