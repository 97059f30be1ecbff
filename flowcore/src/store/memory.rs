//! A store in this process's memory: nothing survives the process, nothing touches the disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::hooks::RunKind;
use crate::record::CacheStatus;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::backend::Backend;
use crate::store::event::{Event, FlowRow, RowUpdate, TaskRow};
use crate::store::process::ProcessInfo;
use crate::store::query::{CacheEntry, LogLine, RunFilter};

#[derive(Default)]
pub(crate) struct MemoryBackend {
    data: Mutex<Data>,
}

#[derive(Default)]
struct Data {
    flows: HashMap<Uuid, FlowRow>,
    /// Flow runs in the order they were created.
    flow_order: Vec<Uuid>,
    tasks: HashMap<Uuid, TaskRow>,
    tasks_of_flow: HashMap<Uuid, Vec<Uuid>>,
    children: HashMap<Uuid, Vec<Uuid>>,
    states: HashMap<Uuid, Vec<State>>,
    logs: Vec<LogLine>,
    cache: HashMap<String, CachedValue>,
}

struct CachedValue {
    task: String,
    json: String,
    created_at: Timestamp,
    expires_at: Timestamp,
}

impl MemoryBackend {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Data {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::FlowRunCreated {
                id,
                name,
                flow,
                parent_id,
                parameters,
                call_seq,
                seq,
                state,
                resumed: _,
            } => {
                if !self.flows.contains_key(id) {
                    self.flow_order.push(*id);
                    if let Some(parent) = parent_id {
                        self.children.entry(*parent).or_default().push(*id);
                    }
                    self.flows.insert(
                        *id,
                        FlowRow {
                            id: *id,
                            name: name.clone(),
                            flow: flow.to_string(),
                            parent_id: *parent_id,
                            parameters: parameters.clone(),
                            state: state.kind,
                            attempts: 0,
                            created_at: state.at,
                            started_at: None,
                            ended_at: None,
                            error: None,
                            call_seq: *call_seq,
                            output: None,
                        },
                    );
                }
                self.transition(RunKind::Flow, *id, *seq, state, None, CacheStatus::Off);
            }
            Event::TaskRunCreated {
                id,
                flow_run_id,
                task,
                tags,
                call_seq,
                state,
            } => {
                if let Some(flow) = flow_run_id {
                    self.tasks_of_flow.entry(*flow).or_default().push(*id);
                }
                self.tasks.insert(
                    *id,
                    TaskRow {
                        id: *id,
                        flow_run_id: *flow_run_id,
                        task: task.to_string(),
                        tags: tags.iter().map(|t| t.to_string()).collect(),
                        state: state.kind,
                        attempts: 0,
                        cache: CacheStatus::Off,
                        created_at: state.at,
                        started_at: None,
                        ended_at: None,
                        error: None,
                        call_seq: *call_seq,
                        output: None,
                    },
                );
                self.states.insert(*id, vec![state.clone()]);
            }
            Event::Transition {
                kind,
                id,
                seq,
                state,
                attempts,
                cache,
            } => self.transition(*kind, *id, *seq, state, Some(*attempts), *cache),
            Event::Output { kind, id, json } => match kind {
                RunKind::Flow => {
                    if let Some(row) = self.flows.get_mut(id) {
                        row.output = Some(json.clone());
                    }
                }
                RunKind::Task => {
                    if let Some(row) = self.tasks.get_mut(id) {
                        row.output = Some(json.clone());
                    }
                }
            },
            Event::Log {
                run_id,
                at,
                level,
                message,
            } => self.logs.push(LogLine {
                run_id: *run_id,
                at: *at,
                level: (*level).to_owned(),
                message: message.clone(),
            }),
            Event::CachePut {
                key,
                task,
                json,
                created_at,
                expires_at,
            } => {
                self.cache.insert(
                    key.clone(),
                    CachedValue {
                        task: task.clone(),
                        json: json.clone(),
                        created_at: *created_at,
                        expires_at: *expires_at,
                    },
                );
            }
            Event::Heartbeat(_) | Event::Flush(_) => {}
        }
    }

    fn transition(
        &mut self,
        kind: RunKind,
        id: Uuid,
        seq: u32,
        state: &State,
        attempts: Option<u32>,
        cache: CacheStatus,
    ) {
        let states = self.states.entry(id).or_default();
        states.truncate(seq as usize);
        states.push(state.clone());
        let update = RowUpdate::from_state(state, attempts.unwrap_or(0), cache);
        match kind {
            RunKind::Flow => {
                if let Some(row) = self.flows.get_mut(&id) {
                    row.state = update.state;
                    if let Some(attempts) = attempts {
                        row.attempts = attempts;
                    }
                    row.started_at = row.started_at.or(update.started_at);
                    row.ended_at = update.ended_at;
                    row.error = update.error;
                }
            }
            RunKind::Task => {
                if let Some(row) = self.tasks.get_mut(&id) {
                    row.state = update.state;
                    row.attempts = update.attempts;
                    row.cache = update.cache;
                    row.started_at = row.started_at.or(update.started_at);
                    row.ended_at = update.ended_at;
                    row.error = update.error;
                }
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn describe(&self) -> String {
        ":memory:".to_owned()
    }

    fn write(&self, batch: &[Event], _: &ProcessInfo) -> Result<(), StoreError> {
        let mut data = self.data();
        for event in batch {
            data.apply(event);
        }
        Ok(())
    }

    fn register_process(&self, _: &ProcessInfo) -> Result<(), StoreError> {
        Ok(())
    }

    /// Only this process can use a memory store, and it is alive.
    fn mark_crashed(&self, _: &ProcessInfo, _: Timestamp) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn reads_block(&self) -> bool {
        false
    }

    fn flow_rows(&self, filter: &RunFilter) -> Result<Vec<FlowRow>, StoreError> {
        let data = self.data();
        Ok(data
            .flow_order
            .iter()
            .rev()
            .filter_map(|id| data.flows.get(id))
            .filter(|row| filter.flow.as_ref().is_none_or(|f| *f == row.flow))
            .filter(|row| filter.state.is_none_or(|s| s == row.state))
            .take(filter.limit)
            .cloned()
            .collect())
    }

    fn flow_row(&self, id: Uuid) -> Result<Option<FlowRow>, StoreError> {
        Ok(self.data().flows.get(&id).cloned())
    }

    fn flow_row_named(&self, name: &str) -> Result<Option<FlowRow>, StoreError> {
        let data = self.data();
        Ok(data
            .flow_order
            .iter()
            .rev()
            .filter_map(|id| data.flows.get(id))
            .find(|row| row.name == name)
            .cloned())
    }

    fn child_flows(&self, parent: Uuid) -> Result<Vec<FlowRow>, StoreError> {
        let data = self.data();
        Ok(data
            .children
            .get(&parent)
            .into_iter()
            .flatten()
            .filter_map(|id| data.flows.get(id).cloned())
            .collect())
    }

    fn task_rows(&self, flow_run: Uuid) -> Result<Vec<TaskRow>, StoreError> {
        let data = self.data();
        Ok(data
            .tasks_of_flow
            .get(&flow_run)
            .into_iter()
            .flatten()
            .filter_map(|id| data.tasks.get(id).cloned())
            .collect())
    }

    fn task_counts(&self, flow_run: Uuid) -> Result<BTreeMap<StateKind, usize>, StoreError> {
        let data = self.data();
        let mut counts = BTreeMap::new();
        for id in data.tasks_of_flow.get(&flow_run).into_iter().flatten() {
            if let Some(row) = data.tasks.get(id) {
                *counts.entry(row.state).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    fn states(&self, run: Uuid) -> Result<Vec<State>, StoreError> {
        Ok(self.data().states.get(&run).cloned().unwrap_or_default())
    }

    fn logs(&self, runs: &[Uuid]) -> Result<Vec<LogLine>, StoreError> {
        Ok(self
            .data()
            .logs
            .iter()
            .filter(|l| runs.contains(&l.run_id))
            .cloned()
            .collect())
    }

    fn cache_get(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        let mut data = self.data();
        match data.cache.get(key) {
            Some(v) if v.expires_at > now => Ok(Some(v.json.clone())),
            Some(_) => {
                data.cache.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError> {
        let mut entries: Vec<CacheEntry> = self
            .data()
            .cache
            .iter()
            .map(|(key, v)| CacheEntry {
                task: v.task.clone(),
                key: key.clone(),
                created_at: v.created_at,
                expires_at: v.expires_at,
                size: v.json.len(),
            })
            .collect();
        entries.sort_by(|a, b| (&a.task, a.created_at).cmp(&(&b.task, b.created_at)));
        Ok(entries)
    }

    fn cache_clear(&self, task: Option<&str>) -> Result<usize, StoreError> {
        let mut data = self.data();
        let before = data.cache.len();
        data.cache.retain(|_, v| task.is_some_and(|t| t != v.task));
        Ok(before - data.cache.len())
    }
}
