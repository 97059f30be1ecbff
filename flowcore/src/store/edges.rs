//! A task run's upstream edges as a store event carries them and the memory store keeps them:
//! none or one without an allocation.
//!
//! Nearly every task run has no edge or one (the output of the task before it). Boxed, the one
//! edge was an allocation of its own per task run, kept as long as the flow run is: in a flow
//! of task runs each given the last one's output, it was most of what a data edge cost
//! (`_int_malloc`'s slow path, since kept allocations never come back to the thread's cache).

use crate::record::Upstream;

/// The edges of one task run, in 24 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Edges {
    #[default]
    None,
    One(Upstream),
    Many(Box<[Upstream]>),
}

impl Edges {
    pub(crate) fn as_slice(&self) -> &[Upstream] {
        match self {
            Edges::None => &[],
            Edges::One(edge) => std::slice::from_ref(edge),
            Edges::Many(edges) => edges,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Edges::None)
    }
}

impl From<&[Upstream]> for Edges {
    fn from(edges: &[Upstream]) -> Self {
        match edges {
            [] => Edges::None,
            [edge] => Edges::One(*edge),
            many => Edges::Many(many.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EdgeKind;
    use uuid::Uuid;

    fn edge(n: u64) -> Upstream {
        Upstream {
            id: Uuid::from_u64_pair(0, n),
            kind: EdgeKind::Data,
            allow_failure: false,
        }
    }

    #[test]
    fn edges_read_back_as_they_were_given() {
        for n in 0..4 {
            let given: Vec<Upstream> = (0..n).map(edge).collect();
            let edges = Edges::from(given.as_slice());
            assert_eq!(edges.as_slice(), given.as_slice());
            assert_eq!(edges.is_empty(), n == 0);
        }
    }

    #[test]
    fn none_or_one_edge_is_kept_inline_in_24_bytes() {
        assert!(matches!(Edges::from(&[edge(1)][..]), Edges::One(_)));
        assert_eq!(size_of::<Edges>(), 24);
    }
}
