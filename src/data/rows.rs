//! Which rows of a dataset a batch reads: the one type the epoch plan, the kernels and
//! the engines share.

/// The rows of the dataset that a batch reads.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'r> {
    /// Rows `start .. start + len`, in stored order.
    Range {
        /// First row.
        start: usize,
        /// Row count.
        len: usize,
    },
    /// The listed rows, in this order (a shuffled batch).
    Gather(&'r [u32]),
}

impl<'r> Rows<'r> {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        match self {
            Rows::Range { len, .. } => *len,
            Rows::Gather(idx) => idx.len(),
        }
    }

    /// `true` for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(offset into the row-major data, gather index)` for a matrix with `cols` columns.
    pub(crate) fn view<'d, T>(&self, data: &'d [T], cols: usize) -> (&'d [T], Option<&'r [u32]>) {
        match *self {
            Rows::Range { start, .. } => (&data[start * cols..], None),
            Rows::Gather(idx) => (data, Some(idx)),
        }
    }
}
