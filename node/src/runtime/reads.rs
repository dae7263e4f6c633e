//! Reads beside the store actor. The store actor is the only writer of storage; long reads — a
//! listing over a month of a province's alerts, the case scheduler's scan of every case, the join
//! check's registry — never go through its mailbox, so they never hold up replication.
//!
//! A running node reads on tokio's blocking pool. The simulator reads inline, in the task that
//! asks: its clock is paused and everything runs on one thread, and a read on another thread would
//! let the clock move while it runs — the same seed must give the same run.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::case::{CaseId, CaseRules, CaseState};
use protocol::registry::{Entity, EntityRef, Settings, SettingsSource, effective_settings, registry_view};
use protocol::{EventId, EventKind};
use topology::NodeId;

use protocol::calendar::WorkCalendar;
use protocol::ledger::{LedgerItem, ledger_view};
use protocol::registry::effective_calendar;
use protocol::warning::{RuleSettings, WarningKey, WarningState, effective_rule_settings, fold_warnings};

use crate::runtime::store::{RegistryWritten, StoredEvent, ledger_events, related};
use crate::storage::{Storage, StorageError};

/// Where a node's long reads run.
#[derive(Clone)]
pub struct Reads {
    storage: Arc<dyn Storage>,
    inline: bool,
    /// Moves each time the store writes registry events (shared with the store actor).
    registry_written: RegistryWritten,
    /// The last [`Reads::registry_of_now`] answer, with the [`RegistryWritten`] count it was read at.
    registry_kept: Arc<std::sync::Mutex<Option<KeptRegistry>>>,
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads").field("inline", &self.inline).finish_non_exhaustive()
    }
}

/// A unit's registry as read when the store had written `written` registry batches.
struct KeptRegistry {
    written: u64,
    unit: NodeId,
    view: Arc<BTreeMap<EntityRef, Entity>>,
}

impl Reads {
    /// A running node: reads on tokio's blocking pool.
    pub fn blocking_pool(storage: Arc<dyn Storage>) -> Reads {
        Reads { storage, inline: false, registry_written: Default::default(), registry_kept: Default::default() }
    }

    /// The count the store moves when it writes registry events: give it to the store actor of
    /// this storage ([`crate::runtime::store::StoreArgs`]).
    pub fn registry_written(&self) -> RegistryWritten {
        self.registry_written.clone()
    }

    /// The storage's version ([`Storage::version`]): unchanged, nothing stored changed.
    pub fn version(&self) -> u64 {
        self.storage.version()
    }

    /// The simulator: reads in the calling task, deterministically.
    pub fn inline(storage: Arc<dyn Storage>) -> Reads {
        Reads { storage, inline: true, registry_written: Default::default(), registry_kept: Default::default() }
    }

    /// The storage, for a point read that cannot take long.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Runs `read` on this node's storage, beside the store actor.
    pub async fn run<T: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        read: impl FnOnce(&dyn Storage) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        if self.inline {
            return read(self.storage.as_ref());
        }
        let storage = self.storage.clone();
        match tokio::task::spawn_blocking(move || read(storage.as_ref())).await {
            Ok(r) => r,
            Err(e) => Err(StorageError::Io(format!("a storage read did not finish: {e}")).into()),
        }
    }

    /// The indexed events of `kind`, all or about `subject`, in event order.
    pub async fn related(&self, kind: EventKind, subject: Option<EventId>) -> Result<Vec<StoredEvent>, StorageError> {
        self.run(move |st| related(st, kind, subject)).await
    }

    /// The registry entities of one unit (a school's canteens, cameras, staff…): an index lookup.
    pub async fn registry_of(&self, unit: NodeId) -> Result<BTreeMap<EntityRef, Entity>, StorageError> {
        self.run(move |st| {
            let events = related(st, EventKind::Registry, Some(EventId { origin: unit, seq: 0 }))?;
            Ok(registry_view(events.iter().map(|s| &s.event)))
        })
        .await
    }

    /// [`Reads::registry_of`] on the caller's thread: for a school's own registry (tens of
    /// entities, an index range in the store's cache) on a request's path, where a hop to the
    /// blocking pool and back costs more than the read. The last answer is kept until the store
    /// writes registry events again ([`RegistryWritten`]): every raise reads the school's cameras,
    /// and they seldom change.
    pub fn registry_of_now(&self, unit: NodeId) -> Result<Arc<BTreeMap<EntityRef, Entity>>, StorageError> {
        // The count is read before the registry: a write landing in between makes the next
        // call read again, never keeps an older view under a newer count.
        let written = self.registry_written.get();
        {
            let kept = self.registry_kept.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = kept.as_ref().filter(|k| k.written == written && k.unit == unit) {
                return Ok(k.view.clone());
            }
        }
        let events = related(self.storage.as_ref(), EventKind::Registry, Some(EventId { origin: unit, seq: 0 }))?;
        let view = Arc::new(registry_view(events.iter().map(|s| &s.event)));
        *self.registry_kept.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(KeptRegistry { written, unit, view: view.clone() });
        Ok(view)
    }

    /// Every case this node holds, folded.
    pub async fn all_cases(&self) -> Result<BTreeMap<CaseId, CaseState>, StorageError> {
        self.run(crate::runtime::store::case_summaries::all_cases).await
    }

    /// Every case this node holds, cut to what a listing shows (no detail, evidence or history
    /// but the refused steps).
    pub async fn case_heads(&self, open_only: bool) -> Result<BTreeMap<CaseId, CaseState>, StorageError> {
        self.run(move |st| crate::runtime::store::case_summaries::case_heads(st, open_only)).await
    }

    /// One case, folded from its own steps (an index lookup).
    pub async fn case(&self, id: CaseId) -> Result<Option<CaseState>, StorageError> {
        self.run(move |st| crate::runtime::store::case_summaries::case(st, id)).await
    }

    /// The registry folded from this node's store (registry events are indexed: no scan of alerts).
    pub async fn registry(&self) -> Result<BTreeMap<EntityRef, Entity>, StorageError> {
        self.run(|st| {
            let events = related(st, EventKind::Registry, None)?;
            Ok(registry_view(events.iter().map(|s| &s.event)))
        })
        .await
    }
}

impl Reads {
    /// The settings in force for `unit` (its county's override, the province's, or the defaults):
    /// only the county's and the province's own registry entries are read (two index lookups),
    /// not a province's whole registry.
    pub async fn settings_for(&self, unit: NodeId) -> Result<(Settings, SettingsSource), StorageError> {
        let mut view = BTreeMap::new();
        for owner in
            [unit.ancestor_at(topology::Tier::Province), unit.ancestor_at(topology::Tier::County)].into_iter().flatten()
        {
            view.extend(self.registry_of(owner).await?);
        }
        Ok(effective_settings(&view, unit))
    }

    /// The case rules in force for `unit`, with the calendar in force.
    pub async fn case_rules_for(&self, unit: NodeId) -> Result<CaseRules, StorageError> {
        let (settings, calendar) = (self.settings_for(unit).await?.0, self.calendar_for(unit).await?);
        Ok(CaseRules { calendar, ..CaseRules::from_settings(&settings) })
    }

    /// The working-day calendar in force: the built-in years, replaced by the province's own
    /// calendar entities (one index lookup of the province's registry).
    pub async fn calendar_for(&self, unit: NodeId) -> Result<WorkCalendar, StorageError> {
        match unit.ancestor_at(topology::Tier::Province) {
            Some(province) => Ok(effective_calendar(&self.registry_of(province).await?)),
            None => Ok(WorkCalendar::builtin().clone()),
        }
    }

    /// The rule settings in force for `unit` (its county's override, the province's, or the
    /// defaults).
    pub async fn rule_settings_for(&self, unit: NodeId) -> Result<RuleSettings, StorageError> {
        let mut view = BTreeMap::new();
        for owner in
            [unit.ancestor_at(topology::Tier::Province), unit.ancestor_at(topology::Tier::County)].into_iter().flatten()
        {
            view.extend(self.registry_of(owner).await?);
        }
        Ok(effective_rule_settings(&view, unit))
    }

    /// A school's ledger records of the days `from_day..=to_day`, folded (later versions win).
    pub async fn ledger(
        &self,
        school: NodeId,
        from_day: u32,
        to_day: u32,
    ) -> Result<BTreeMap<(NodeId, String), LedgerItem>, StorageError> {
        self.run(move |st| {
            let events = ledger_events(st, school, from_day, to_day)?;
            Ok(ledger_view(events.iter().map(|s| &s.event)))
        })
        .await
    }

    /// The warnings about `school` (or about every school this node holds), folded.
    pub async fn warnings(&self, school: Option<NodeId>) -> Result<BTreeMap<WarningKey, WarningState>, StorageError> {
        self.run(move |st| {
            let events = related(st, EventKind::Warning, school.map(|s| EventId { origin: s, seq: 0 }))?;
            Ok(fold_warnings(events.iter().map(|s| &s.event)))
        })
        .await
    }
}

pub use crate::runtime::store::read::case_inputs;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::store::{PriorityInbox, StoreActor, StoreArgs, StoreMsg};
    use crate::storage::mem::MemStorage;
    use protocol::Body;
    use protocol::registry::{City, EntityData, EntityKind, RegistryChange, RegistryOp};
    use ractor::Actor;

    /// The kept registry view is read again exactly when the store wrote registry events: a
    /// renamed city shows at once, an alert-like write (a directive here) keeps the view.
    #[tokio::test]
    async fn the_kept_registry_is_read_again_after_registry_events_only() {
        let me: NodeId = "13".parse().unwrap();
        let city: NodeId = "1301".parse().unwrap();
        let storage = Arc::new(MemStorage::new());
        let reads = Reads::inline(storage.clone());
        let args = StoreArgs {
            me,
            storage,
            clock: Arc::new(crate::clock::SystemClock::new()),
            priority: PriorityInbox::default(),
            on_revoked: None,
            seal_keys: crate::runtime::store::SealKeys::simulated(1, me),
            own_cert: None,
            registry_written: reads.registry_written(),
        };
        let (store, task) = Actor::spawn(None, StoreActor, args).await.unwrap();
        let name_it = |name: &str| {
            let entity = EntityRef { kind: EntityKind::City, node: city, id: String::new() };
            let op = RegistryOp::Upsert(EntityData::City(City { name: name.into() }));
            vec![(city, Body::Registry(RegistryChange { entity, op }))]
        };
        let name_of = |view: &BTreeMap<EntityRef, Entity>| match view.values().next().map(|e| &e.data) {
            Some(EntityData::City(c)) => Some(c.name.clone()),
            _ => None,
        };
        assert_eq!(name_of(&reads.registry_of_now(city).unwrap()), None);
        let items = name_it("石家庄");
        ractor::call!(store, |reply| StoreMsg::Append { items, by: None, reply }).unwrap().unwrap();
        let first = reads.registry_of_now(city).unwrap();
        assert_eq!(name_of(&first), Some("石家庄".into()), "the registry write is seen at once");

        let directive = Body::Directive(protocol::Directive { title: "通知".into(), text: String::new() });
        let items = vec![(me, directive)];
        ractor::call!(store, |reply| StoreMsg::Append { items, by: None, reply }).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &reads.registry_of_now(city).unwrap()), "no registry event: the view is kept");

        let items = name_it("石家庄市");
        ractor::call!(store, |reply| StoreMsg::Append { items, by: None, reply }).unwrap().unwrap();
        assert_eq!(name_of(&reads.registry_of_now(city).unwrap()), Some("石家庄市".into()));
        store.stop(None);
        task.await.unwrap();
    }
}
