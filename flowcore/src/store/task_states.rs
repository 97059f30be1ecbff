//! A task run's states as the memory store keeps them: in 32 bytes, with no allocation, when
//! they are the usual ones (up to three, without messages: Pending, Running, Completed), since
//! a flow of a million task runs keeps a million of them. Other histories (retries, a message)
//! are kept whole.

use crate::clock::Timestamp;
use crate::state::{State, StateKind};

/// At most this many states are kept compactly.
const COMPACT: usize = 3;

pub(crate) enum TaskStates {
    /// The first `len` states: their kinds and times; none has a message.
    Compact {
        at: [Timestamp; COMPACT],
        kinds: [StateKind; COMPACT],
        len: u8,
    },
    Full(Vec<State>),
}

impl TaskStates {
    pub(crate) fn new(first: &State) -> Self {
        let mut states = TaskStates::Compact {
            at: [first.at; COMPACT],
            kinds: [first.kind; COMPACT],
            len: 0,
        };
        states.place(0, first);
        states
    }

    /// Puts `state` at position `seq`, dropping any states after it: a transition seen again
    /// replaces what followed it.
    pub(crate) fn place(&mut self, seq: u32, state: &State) {
        if !self.place_compactly(seq, state)
            && let TaskStates::Full(states) = self
        {
            states.truncate(seq as usize);
            states.push(state.clone());
        }
    }

    /// Places `state` if the history stays compact; otherwise makes it whole, for the caller
    /// to place it in.
    #[inline]
    fn place_compactly(&mut self, seq: u32, state: &State) -> bool {
        let seq = seq as usize;
        if let TaskStates::Compact { at, kinds, len } = self {
            if seq < COMPACT && seq <= usize::from(*len) && state.message.is_none() {
                at[seq] = state.at;
                kinds[seq] = state.kind;
                *len = seq as u8 + 1;
                return true;
            }
            self.make_full();
        }
        false
    }

    /// A history leaves the compact form at an unusual state (a retry, a failure): made whole,
    /// with room for the states a retry or two bring rather than a reallocation at each.
    #[cold]
    fn make_full(&mut self) {
        if let TaskStates::Compact { at, kinds, len } = self {
            let len = usize::from(*len);
            let mut states = Vec::with_capacity(len + 6);
            states.extend((0..len).map(|i| State::new(kinds[i], at[i], None)));
            *self = TaskStates::Full(states);
        }
    }

    /// The latest state's kind.
    pub(crate) fn last_kind(&self) -> Option<StateKind> {
        match self {
            TaskStates::Compact { kinds, len, .. } => {
                usize::from(*len).checked_sub(1).map(|i| kinds[i])
            }
            TaskStates::Full(states) => states.last().map(|s| s.kind),
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<State> {
        match self {
            TaskStates::Compact { at, kinds, len } => (0..usize::from(*len))
                .map(|i| State::new(kinds[i], at[i], None))
                .collect(),
            TaskStates::Full(states) => states.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(kind: StateKind, at: i64, message: Option<&str>) -> State {
        State::new(kind, Timestamp::from_micros(at), message.map(str::to_owned))
    }

    #[test]
    fn the_usual_history_is_kept_compactly_and_read_back_whole() {
        let pending = state(StateKind::Pending, 1, None);
        let mut states = TaskStates::new(&pending);
        states.place(1, &state(StateKind::Running, 2, None));
        states.place(2, &state(StateKind::Completed, 3, None));
        assert!(matches!(states, TaskStates::Compact { len: 3, .. }));
        assert_eq!(states.last_kind(), Some(StateKind::Completed));
        assert_eq!(
            states.to_vec(),
            [
                pending,
                state(StateKind::Running, 2, None),
                state(StateKind::Completed, 3, None)
            ]
        );
        assert_eq!(size_of::<TaskStates>(), 32);
    }

    #[test]
    fn a_message_or_a_fourth_state_keeps_the_history_whole() {
        let mut states = TaskStates::new(&state(StateKind::Pending, 1, None));
        states.place(1, &state(StateKind::Running, 2, Some("attempt 1/2")));
        assert!(matches!(states, TaskStates::Full(_)));
        states.place(2, &state(StateKind::Retrying, 3, None));
        states.place(3, &state(StateKind::Running, 4, Some("attempt 2/2")));
        states.place(4, &state(StateKind::Completed, 5, None));
        let kinds: Vec<_> = states.to_vec().iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                StateKind::Pending,
                StateKind::Running,
                StateKind::Retrying,
                StateKind::Running,
                StateKind::Completed
            ]
        );
        assert_eq!(states.to_vec()[1].message(), "attempt 1/2");
        assert_eq!(states.to_vec()[3].message(), "attempt 2/2");

        let mut states = TaskStates::new(&state(StateKind::Pending, 1, None));
        for (seq, kind) in [StateKind::Running, StateKind::Failed, StateKind::Running]
            .into_iter()
            .enumerate()
        {
            states.place(seq as u32 + 1, &state(kind, seq as i64 + 2, None));
        }
        assert_eq!(states.to_vec().len(), 4);
        assert_eq!(states.last_kind(), Some(StateKind::Running));
    }

    #[test]
    fn a_transition_seen_again_replaces_what_followed_it() {
        let mut states = TaskStates::new(&state(StateKind::Pending, 1, None));
        states.place(1, &state(StateKind::Running, 2, None));
        states.place(2, &state(StateKind::Completed, 3, None));
        states.place(1, &state(StateKind::Cancelled, 4, None));
        let kinds: Vec<_> = states.to_vec().iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [StateKind::Pending, StateKind::Cancelled]);
    }
}
