// A step's mean loss into its slot and the halting rule (the twin of the trainer's
// session rule), shared by loss.wgsl, glm_finish.wgsl, mlp_grads.wgsl and glm_epoch.wgsl,
// which the pipelines compile with this file in front; each declares `losses` and `halt`.
//
// With `mode` ≠ 0 the call decides, before this step's update runs, whether training
// stops here: on a non-finite loss (mode 1 and 2) or, in mode 2, on seed 000's rule
// |loss − previous loss| < tol. It then sets halt[0] = 1 and halt[1] = slot; the update
// kernels read halt[0] and leave the parameters alone from then on, so the device keeps
// exactly the parameters of the halting step however late the host reads the flag.
//
// | halt[i] | meaning |
// |---|---|
// | 0 | 1 once halted |
// | 1 | the loss slot of the halting step |
// | 2 | previous loss (f32 bits) |
// | 3 | 1 once a previous loss exists |
// Returns 1 when training stops at this step (the many-step kernel ends its steps).
fn record_loss(loss: f32, slot: u32, mode: u32, tol: f32) -> u32 {
    losses[slot] = loss;
    var stop = 0u;
    if (mode != 0u && halt[0] == 0u) {
        let bits = bitcast<u32>(loss);
        // Exponent all ones: ±inf or NaN (a bit test, immune to fast-math NaN folding).
        let non_finite = (bits & 0x7f800000u) == 0x7f800000u;
        let converged = mode == 2u && halt[3] == 1u && abs(loss - bitcast<f32>(halt[2])) < tol;
        if (non_finite || converged) {
            halt[0] = 1u;
            halt[1] = slot;
            stop = 1u;
        }
        halt[2] = bits;
        halt[3] = 1u;
    }
    return stop;
}

