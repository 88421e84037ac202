//! The runtime's container events: whoever drives it (the agent, the CLI, a monitor
//! recording its container's exit) records what it did in the state root's event log.

use super::Runtime;
use crate::state::events::{Action, Event, EventLog, container_event};
use crate::state::record::ContainerRecord;

impl Runtime {
    pub(crate) fn record_event(&self, event: Event) {
        EventLog::new(&self.layout).append(&event);
    }

    pub(crate) fn container_event(&self, record: &ContainerRecord, action: Action) -> Event {
        container_event(&self.layout, record, action)
    }
}
