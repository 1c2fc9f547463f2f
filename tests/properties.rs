//! Properties of the epoch plan, for any sizes: the definition of "the same run".

use gradflow::data::{Shuffle, epoch_plan, epoch_plan_over};
use proptest::prelude::*;

fn shuffles() -> impl Strategy<Value = Shuffle> {
    prop_oneof![
        Just(Shuffle::Off),
        Just(Shuffle::Full),
        (1usize..50, 1usize..6).prop_map(|(chunk_rows, window_chunks)| Shuffle::Windowed {
            chunk_rows,
            window_chunks,
        }),
    ]
}

proptest! {
    /// Without drop_last every row is visited exactly once per epoch, in batches of
    /// `batch_size` but the last; with it, exactly ⌊n / b⌋·b distinct rows.
    #[test]
    fn every_row_once_per_epoch(
        n in 1usize..3000,
        batch in 1usize..400,
        seed: u64,
        epoch in 0usize..5,
        shuffle in shuffles(),
        drop_last: bool,
    ) {
        let plan = epoch_plan(seed, epoch, n, batch, shuffle, drop_last).unwrap();
        let b = batch.min(n);
        let sizes: Vec<usize> = plan.batches().map(|x| x.len).collect();
        let mut rows: Vec<u32> = plan.batches().flat_map(|x| plan.rows(x)).collect();
        prop_assert!(sizes.iter().rev().skip(1).all(|&s| s == b));
        rows.sort_unstable();
        let before = rows.len();
        rows.dedup();
        prop_assert_eq!(rows.len(), before, "a row twice");
        if drop_last {
            prop_assert_eq!(rows.len(), n / b * b);
            prop_assert!(rows.iter().all(|&r| (r as usize) < n));
        } else {
            prop_assert_eq!(rows, (0..n as u32).collect::<Vec<_>>());
        }
        // The plan is a function of its arguments.
        prop_assert_eq!(plan, epoch_plan(seed, epoch, n, batch, shuffle, drop_last).unwrap());
    }

    /// A plan over a subset visits exactly that subset, once.
    #[test]
    fn a_subset_plan_visits_the_subset(
        rows in proptest::collection::btree_set(0u32..5000, 1..400),
        batch in 1usize..64,
        seed: u64,
        shuffle in shuffles(),
    ) {
        let subset: Vec<u32> = rows.into_iter().collect();
        let plan = epoch_plan_over(seed, 3, &subset, batch, shuffle, false).unwrap();
        let mut seen: Vec<u32> = plan.batches().flat_map(|x| plan.rows(x)).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, subset);
    }
}
