//! What a fit leaves behind besides the parameters, so that training can go on exactly
//! where it stopped: `partial_fit`, warm starts, checkpoints.

/// The training state of a fitted model: how far it got and the optimizer's memory.
///
/// With it, [`Trainer::partial_fit`](crate::Trainer::partial_fit) continues a fit as if it
/// had never stopped: the next epoch's shuffle is the one an uninterrupted run would use,
/// the learning-rate schedule and Adam's bias correction count on from the same update,
/// and velocities and moments are restored. On the CPU a resumed run equals an
/// uninterrupted one bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState {
    /// Epochs completed (the next epoch's index, which seeds its shuffle).
    pub epochs_done: usize,
    /// Updates applied (Adam's t, the inverse-scaling schedule's t).
    pub updates: u64,
    /// The adaptive schedule: current divisor of the rate, best epoch loss, epochs since.
    pub adaptive: (f64, f64, usize),
    /// The optimizer's two state tensors per parameter (zeros for plain SGD).
    pub optimizer: Vec<[Vec<f32>; 2]>,
}

impl Default for TrainState {
    /// Before the first epoch: nothing done, the adaptive rate undivided.
    fn default() -> Self {
        TrainState {
            epochs_done: 0,
            updates: 0,
            adaptive: (1.0, f64::INFINITY, 0),
            optimizer: Vec::new(),
        }
    }
}
