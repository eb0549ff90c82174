//! An aggregate may list no commands (its events arrive from elsewhere);
//! `events(..)` must not be empty, `commands(..)` may.

use es_core::{event, Aggregate, Apply, EventSet};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Measured {
    celsius: i32,
}

#[derive(Aggregate, Default, serde::Serialize, serde::Deserialize)]
#[aggregate(name = "sensor", error = std::convert::Infallible, events(Measured), commands())]
struct Sensor {
    last: i32,
}

impl Apply<Measured> for Sensor {
    fn apply(&mut self, event: &Measured) {
        self.last = event.celsius;
    }
}

fn main() {
    let mut sensor = Sensor::default();
    sensor.apply_event(&SensorEvent::from(Measured { celsius: -3 }));
    assert_eq!(sensor.last, -3);
    assert_eq!(SensorEvent::event_types(), ["Measured"]);
}
