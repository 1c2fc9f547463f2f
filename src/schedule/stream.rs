//! A session's view of the prefetcher: which gathered group holds the batch being run.

use std::sync::Arc;
use std::time::Duration;

use super::{HostBatch, Prefetcher};
use crate::data::{Batch, EpochPlan};
use crate::error::Result;

/// Where the current group came from: its place in the epoch and the ring.
#[derive(Debug, Clone, Copy)]
struct Group {
    first: usize,
    count: usize,
    start: usize,
    /// Groups taken since the fit began; `number % depth` is the ring slot.
    number: u64,
}

/// Follows an epoch batch by batch: hands each new group to the caller once (to upload
/// or copy), then answers where each of its batches starts.
#[derive(Debug)]
pub(crate) struct Stream {
    feed: Prefetcher,
    current: Option<Group>,
    taken: u64,
}

impl Stream {
    pub fn new(feed: Prefetcher) -> Self {
        Stream {
            feed,
            current: None,
            taken: 0,
        }
    }

    pub fn begin_epoch(&mut self, plan: &Arc<EpochPlan>) {
        self.current = None;
        self.feed.begin_epoch(plan);
    }

    /// The group number and row offset of `batch` in its group. When `batch` starts a
    /// new group, the group is fetched and given to `load` with its number first; the
    /// host buffer is recycled as soon as `load` returns, whatever it returns.
    pub fn locate(
        &mut self,
        batch: Batch,
        load: impl FnOnce(u64, &HostBatch) -> Result<()>,
    ) -> Result<(u64, usize)> {
        if let Some(g) = self.current
            && (g.first..g.first + g.count).contains(&batch.index)
        {
            return Ok((g.number, batch.start - g.start));
        }
        self.current = None;
        let host = self.feed.next(batch)?;
        let number = self.taken;
        let loaded = load(number, &host);
        let group = Group {
            first: host.first,
            count: host.count,
            start: host.start,
            number,
        };
        self.feed.recycle(host);
        loaded?;
        self.taken += 1;
        self.current = Some(group);
        Ok((number, batch.start - group.start))
    }

    /// Whether `batch` is the last of the current group.
    pub fn ends_group(&self, batch: Batch) -> bool {
        self.current
            .is_some_and(|g| batch.index + 1 == g.first + g.count)
    }

    /// Time spent waiting for the worker.
    pub fn waited(&self) -> Duration {
        self.feed.waited()
    }

    /// Time the worker spent gathering.
    pub fn gathering(&self) -> Duration {
        self.feed.gathering()
    }
}
