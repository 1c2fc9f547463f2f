//! The GPU cost model: what one training step of each workload asks of a device, and the
//! time that predicts on a device described by six numbers (`gradflow bench --explain`).
//!
//! A step is a list of dispatches, each with its workgroups, the bytes it reads and
//! writes, its floating-point work and the barriers each of its workgroups crosses,
//! derived from the same rules the engine follows (the many-step kernel's steps per
//! dispatch, the fused GLM gradient's segments, the epilogues, the feature chunks, the
//! adapter's kernel variants). A dispatch costs
//!
//! ```text
//! launch + max(bytes / (bandwidth · occ), flops / (peak · occ)) + ⌈wg / units⌉ · barriers · barrier
//! occ = min(1, wg / units)
//! ```
//!
//! (a dispatch with fewer workgroups than the device has units reaches only that share
//! of its bandwidth and peak; a unit walks its workgroups one after another, each paying
//! its barriers), and a step adds its share of the epoch's submissions and host waits,
//! less what the epochs queued ahead of the host's reads hide ([`Device::epochs_ahead`]).
//! The many-step kernel is different in kind: one workgroup runs a chain of dependent
//! steps, each reading its batch and reducing it through workgroup memory between
//! barriers, so its bytes move at the rate such a chain reaches (`chain_gbs`, measured
//! on its own) rather than at a share of the device's bandwidth. And a CPU adapter runs
//! every case of a `switch` under a mask (llvmpipe's SIMD lanes share one instruction
//! stream), so a kernel that picks the feature chunk of each row through a switch reads
//! as if every chunk were read (`masked_switch`); a GPU branches once per warp.
//! The largest term names the bound: launch, memory, compute, sync or host.

use serde::Serialize;

use crate::gpu::kernels;
use crate::gpu::tune::{GlmEpochVariant, GlmGradVariant, MatmulBlock, MlpStep};

use super::Workload;

/// A device as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Device {
    /// Name in the tables.
    pub name: &'static str,
    /// Microseconds a dispatch costs beyond its work (recording, scheduling, the gap
    /// between dependent dispatches).
    pub launch_us: f64,
    /// Microseconds a submission or a host wait costs (the round trip).
    pub host_us: f64,
    /// Memory bandwidth the kernels reach, GB/s.
    pub bandwidth_gbs: f64,
    /// Float32 rate the kernels reach, GFLOP/s.
    pub gflops: f64,
    /// Units that run workgroups at once (SMs; a CPU adapter's threads).
    pub units: f64,
    /// Microseconds a barrier costs a workgroup of 256 invocations (a CPU adapter pays
    /// in proportion to the invocations it switches between; a GPU about the same for
    /// any size).
    pub barrier_us: f64,
    /// Bandwidth, GB/s, that one workgroup's chain of dependent steps reaches (the
    /// many-step kernel): reads that wait on the last step's barrier, not a device full
    /// of independent loads.
    pub chain_gbs: f64,
    /// Whether a `switch` costs every case (a CPU adapter's masked SIMD lanes).
    pub masked_switch: bool,
    /// Epochs the trainer queues ahead of its reads where an epoch is short
    /// ([`TrainConfig::epochs_ahead`](crate::TrainConfig::epochs_ahead)'s automatic
    /// choice: 2 on a hardware adapter, 0 on a CPU adapter).
    pub epochs_ahead: usize,
    /// Largest storage binding, bytes (how many chunks the features take).
    pub max_binding: u64,
    /// The kernel variants the device runs (its tuning).
    pub glm_grad: GlmGradVariant,
    /// The many-step kernel's variant.
    pub glm_epoch: GlmEpochVariant,
    /// The matrix products' register block.
    pub matmul: MatmulBlock,
    /// How an MLP step runs (fused passes or one dispatch per op).
    pub mlp: MlpStep,
}

/// The presets: an H100 SXM and an H200 from their data sheets (HBM3 3.35 TB/s, HBM3e
/// 4.8 TB/s; 67 TFLOP/s float32 without tensor cores; 132 SMs), with what `gradflow
/// bench --kernels` measured on an H200 through NVIDIA's Vulkan driver (BENCHMARKS.md,
/// 2026-12-04 later, run 4): a dispatch 3.3–4.4 µs, a submission waited for 95 µs, the
/// many-step kernel's chain 67.6 kB a step in 10.6 µs (6.4 GB/s), and the variants its
/// tuner chose (the split sums it also chose are not modelled: see docs/COST_MODEL.md);
/// lavapipe on this repository's
/// 2-core development machine from kernel probes, not from the workloads it predicts
/// (BENCHMARKS.md, 2026-12-04, the variants the tuner chose there): the tuner's
/// fused-gradient probe (Rows4: 16.8 MB read in 12.3 ms, 1.37 GB/s) and matrix-product
/// probe (155 MFLOP in 43.4 ms: 3.57 GFLOP/s), 16 softmax dispatches in one submission
/// (1.71 ms: 90 µs each after a 300 µs round trip), the 256 × 256 column sums (0.83 ms:
/// 0.6 µs a 64-invocation barrier), and the tuner's many-step probe (Rows4 on a storage
/// parameter block: 64 steps of 256 × 64 in 10.8 ms, 67.6 kB a step in 0.17 ms,
/// 0.40 GB/s). The effective rates of its shaders, not of its CPU.
pub const PRESETS: [Device; 3] = [H100, H200, LAVAPIPE];

const H100: Device = Device {
    name: "H100 SXM",
    launch_us: 4.0,
    host_us: 95.0,
    bandwidth_gbs: 3350.0,
    gflops: 67_000.0,
    units: 132.0,
    barrier_us: 0.05,
    chain_gbs: 6.4,
    masked_switch: false,
    epochs_ahead: crate::train::AUTO_EPOCHS_AHEAD,
    max_binding: 4 << 30,
    glm_grad: GlmGradVariant::Quads,
    glm_epoch: GlmEpochVariant::Lanes,
    matmul: MatmulBlock::Four,
    mlp: MlpStep::Fused,
};

/// An H100 with HBM3e: the same SMs, more bandwidth.
const H200: Device = Device {
    name: "H200",
    bandwidth_gbs: 4800.0,
    ..H100
};

const LAVAPIPE: Device = Device {
    name: "lavapipe (2 cores)",
    launch_us: 90.0,
    host_us: 300.0,
    bandwidth_gbs: 1.37,
    gflops: 3.57,
    units: 2.0,
    barrier_us: 2.4,
    chain_gbs: 0.40,
    masked_switch: true,
    epochs_ahead: 0,
    max_binding: 128 << 20,
    glm_grad: GlmGradVariant::Rows4,
    glm_epoch: GlmEpochVariant::Rows4,
    matmul: MatmulBlock::Eight,
    mlp: MlpStep::PerOp,
};

/// One dispatch of a step (or a step's share of a many-step dispatch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dispatch {
    /// What it runs.
    pub kernel: &'static str,
    /// Dispatches of this kind per step (1/16 for the many-step kernel's).
    pub per_step: f64,
    /// Workgroups per dispatch.
    pub workgroups: u64,
    /// Invocations per workgroup.
    pub lanes: u32,
    /// Bytes read and written per step.
    pub bytes: f64,
    /// Floating-point operations per step.
    pub flops: f64,
    /// Barriers each workgroup crosses per step (over all of the step's dispatches of
    /// this kind).
    pub barriers: f64,
    /// One workgroup's chain of dependent steps: its bytes move at
    /// [`Device::chain_gbs`].
    pub chain: bool,
}

/// A workload's step on a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepCost {
    /// The workload.
    pub workload: Workload,
    /// The dispatches of one step.
    pub dispatches: Vec<Dispatch>,
    /// Steps per epoch.
    pub steps_per_epoch: f64,
    /// Submissions per epoch.
    pub submissions_per_epoch: f64,
    /// Host waits per epoch (the losses' readback; the full batch's evaluation).
    pub waits_per_epoch: f64,
}

/// A prediction: milliseconds per step and the term that dominates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// Milliseconds per step.
    pub ms: f64,
    /// `launch`, `memory`, `compute`, `sync` or `host`.
    pub bound: &'static str,
}

impl StepCost {
    /// Dispatches per step.
    pub fn dispatches_per_step(&self) -> f64 {
        self.dispatches.iter().map(|d| d.per_step).sum()
    }

    /// Bytes read and written per step.
    pub fn bytes(&self) -> f64 {
        self.dispatches.iter().map(|d| d.bytes).sum()
    }

    /// Floating-point operations per step.
    pub fn flops(&self) -> f64 {
        self.dispatches.iter().map(|d| d.flops).sum()
    }

    /// The predicted time per step on `dev`.
    pub fn predict(&self, dev: &Device) -> Prediction {
        let mut terms = [
            ("launch", 0.0),
            ("memory", 0.0),
            ("compute", 0.0),
            ("sync", 0.0),
            ("host", 0.0),
        ];
        for d in &self.dispatches {
            let wg = d.workgroups.max(1) as f64;
            let occ = (wg / dev.units).min(1.0);
            let memory = if d.chain {
                d.bytes / (dev.chain_gbs * 1e3)
            } else {
                d.bytes / (dev.bandwidth_gbs * 1e3 * occ)
            };
            let compute = d.flops / (dev.gflops * 1e3 * occ);
            terms[0].1 += d.per_step * dev.launch_us;
            if memory >= compute {
                terms[1].1 += memory;
            } else {
                terms[2].1 += compute;
            }
            let barrier = if dev.units <= 64.0 {
                dev.barrier_us * f64::from(d.lanes) / 256.0
            } else {
                dev.barrier_us
            };
            terms[3].1 += (wg / dev.units).ceil() * d.barriers * barrier;
        }
        // The host's share: its round trips, less what the epochs queued ahead hide.
        // With `a` epochs queued behind the one being read, the device idles only when
        // a round trip outlasts the a epochs it has in hand: an epoch then takes
        // max(device, (device + round trips) / (a + 1)).
        let steps = self.steps_per_epoch.max(1.0);
        let device_epoch: f64 = terms[..4].iter().map(|t| t.1).sum::<f64>() * steps;
        let host_epoch = (self.submissions_per_epoch + self.waits_per_epoch) * dev.host_us;
        let ahead = crate::train::AUTO_AHEAD_BELOW.as_secs_f64() * 1e6 > device_epoch;
        let epoch = match dev.epochs_ahead {
            a if a > 0 && ahead => device_epoch.max((device_epoch + host_epoch) / (a + 1) as f64),
            _ => device_epoch + host_epoch,
        };
        terms[4].1 = (epoch - device_epoch) / steps;
        let us: f64 = terms.iter().map(|t| t.1).sum();
        let bound = terms
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or("launch", |t| t.0);
        Prediction {
            ms: us / 1e3,
            bound,
        }
    }
}

/// The optimizer's SGD step of every parameter tensor in one dispatch
/// (`update_all.wgsl`, on devices with its 17 storage bindings, as all three presets
/// are): each tensor's 256-value blocks, θ and its gradient read, θ written.
fn update_all(tensors: &[f64]) -> Dispatch {
    let values: f64 = tensors.iter().sum();
    Dispatch {
        kernel: "update (all tensors)",
        per_step: 1.0,
        workgroups: tensors.iter().map(|v| (v / 256.0).ceil() as u64).sum(),
        lanes: 256,
        bytes: 3.0 * values * 4.0,
        flops: 2.0 * values,
        barriers: 0.0,
        chain: false,
    }
}

/// The step of `w` (full size) on `dev`.
pub fn step_cost(w: Workload, dev: &Device) -> StepCost {
    let (n, p) = (w.rows() as f64, w.p());
    let pf = p as f64;
    let f = 4.0; // bytes per value
    match w {
        // W5 (the closed form) has no GPU step; it is modelled as W1 where asked.
        Workload::W1 | Workload::W2 | Workload::W5 => {
            // The many-step kernel: one workgroup, 16 steps a dispatch.
            let b = 256.0;
            let per = kernels::glm_steps_per_dispatch(256) as f64;
            let steps = (n / b).ceil();
            // A submission holds what the parameter ring can launch: 7 blocks a step ×
            // 32 steps, 16 steps each.
            let capacity = 7.0 * 32.0 * per;
            // Features over several bindings are picked per row through a switch.
            let chunks = (n * pf * f / dev.max_binding as f64).ceil().max(1.0);
            let switch = if dev.masked_switch { chunks } else { 1.0 };
            let (lanes, barriers) = match dev.glm_epoch {
                // Per step: three per 256-row tile, the loss's tree (8) and two more.
                GlmEpochVariant::Tiles => (256, 13.0),
                // Per step: the batch (2), the loss (2), two per 16 features.
                GlmEpochVariant::Rows | GlmEpochVariant::Rows4 => {
                    (64, 4.0 + 2.0 * (pf / 16.0).ceil())
                }
                // Per step: three per tile (256 rows at p = 64), the reductions (2), the
                // step's descriptor and the stop decision (2).
                GlmEpochVariant::Lanes => (256, 7.0),
            };
            StepCost {
                workload: w,
                dispatches: vec![Dispatch {
                    kernel: "glm_epoch (16 steps)",
                    per_step: 1.0 / per,
                    workgroups: 1,
                    lanes,
                    bytes: b * (pf * switch + 2.0) * f,
                    flops: 4.0 * b * pf,
                    barriers,
                    chain: true,
                }],
                steps_per_epoch: steps,
                submissions_per_epoch: (steps / capacity).ceil(),
                waits_per_epoch: 1.0,
            }
        }
        Workload::W3 => {
            let (b, h, k) = (256.0, 256.0, 10.0);
            let mm = |kernel, m: f64, kk: f64, nn: f64, extra: f64| {
                let block = match dev.matmul {
                    MatmulBlock::Four => 32.0,
                    MatmulBlock::Eight => 64.0,
                };
                Dispatch {
                    kernel,
                    per_step: 1.0,
                    workgroups: ((m / block).ceil() * (nn / block).ceil()) as u64,
                    lanes: 64,
                    bytes: (m * kk + kk * nn + m * nn + extra) * f,
                    flops: 2.0 * m * kk * nn,
                    barriers: 0.0,
                    chain: false,
                }
            };
            let small = |kernel, workgroups, lanes, values: f64, barriers| Dispatch {
                kernel,
                per_step: 1.0,
                workgroups,
                lanes,
                bytes: values * f,
                flops: values,
                barriers,
                chain: false,
            };
            let steps = (n / b).ceil();
            let params = pf * h + h + h * k + k;
            // What the rows pass writes and the sums pass reads: the gathered rows, a, δ¹, δ².
            let batch_values = b * (pf + 2.0 * h + k);
            let rows_per_group = kernels::mlp_rows_per_group(256, (p, 256, 10)) as f64;
            let fused = [
                Dispatch {
                    kernel: "mlp_rows: forward, softmax + CCE, δ², δ¹",
                    per_step: 1.0,
                    workgroups: (b / rows_per_group).ceil() as u64,
                    lanes: 256,
                    bytes: (b * pf + params + batch_values) * f,
                    flops: 2.0 * b * (pf * h + 2.0 * h * k),
                    // Four phases, and the workgroup memory's zeroing.
                    barriers: 5.0,
                    chain: false,
                },
                Dispatch {
                    kernel: "mlp_grads: the four gradients, the loss",
                    per_step: 1.0,
                    workgroups: ((((pf + 1.0) / 4.0).ceil() * h / 32.0).ceil()
                        + (((h + 1.0) / 4.0).ceil() * k / 32.0).ceil()
                        + 1.0) as u64,
                    lanes: 256,
                    bytes: (batch_values + params) * f,
                    flops: 2.0 * b * (pf * h + h * k),
                    // The segments' sum; the loss's tree.
                    barriers: 9.0,
                    chain: false,
                },
                update_all(&[pf * h, h, h * k, k]),
            ];
            let dispatches = if dev.mlp == MlpStep::Fused {
                fused.to_vec()
            } else {
                vec![
                    mm("X·W¹ + b¹, σ (epilogue)", b, pf, h, h),
                    mm("A¹·W² + b² (epilogue)", b, h, k, k),
                    small("softmax + CCE (one workgroup)", 1, 256, 3.0 * b * k, 9.0),
                    mm("A¹ᵀ·δ²", h, b, k, 0.0),
                    small("1ᵀδ²", k as u64, 64, b * k, 7.0),
                    mm("δ²·W²ᵀ · σ′ (epilogue)", b, k, h, b * h),
                    mm("Xᵀ·δ¹", pf, b, h, 0.0),
                    small("1ᵀδ¹", h as u64, 64, b * h, 7.0),
                    update_all(&[pf * h, h, h * k, k]),
                ]
            };
            StepCost {
                workload: w,
                dispatches,
                steps_per_epoch: steps,
                // 32 steps a submission.
                submissions_per_epoch: (steps / 32.0).ceil(),
                waits_per_epoch: 1.0,
            }
        }
        Workload::W4 => {
            let rows = w.rows();
            let cut = kernels::glm_grad_split(rows, p, dev.glm_grad);
            let bytes_x = n * pf * f;
            let chunks = (bytes_x / dev.max_binding as f64).ceil().max(1.0);
            let barriers = if dev.glm_grad.per_lane() {
                // The workgroup's gradients reduced 16 features at a time, the tree.
                2.0 * (pf / 16.0).ceil() + 7.0
            } else {
                // Three a tile, the reductions.
                3.0 * (cut.seg_len / 256) as f64 + 12.0
            };
            let partials = (cut.segments * kernels::glm_part_cols(p)) as f64;
            let mut dispatches = vec![Dispatch {
                kernel: "glm_grad (per chunk)",
                per_step: chunks,
                workgroups: cut.segments as u64,
                lanes: if dev.glm_grad.per_lane() { 64 } else { 256 },
                // Over the step's chunk dispatches: X once, targets and order, partials.
                bytes: bytes_x + n * 2.0 * f + chunks * partials * f,
                flops: 4.0 * n * pf,
                barriers: chunks * barriers,
                chain: false,
            }];
            dispatches.push(Dispatch {
                kernel: "glm_finish (one workgroup)",
                per_step: 1.0,
                workgroups: 1,
                lanes: 256,
                bytes: chunks * partials * f,
                flops: chunks * partials,
                barriers: 1.0,
                chain: false,
            });
            dispatches.push(update_all(&[pf, 1.0]));
            StepCost {
                workload: w,
                dispatches,
                steps_per_epoch: 1.0,
                submissions_per_epoch: 1.0,
                waits_per_epoch: 1.0,
            }
        }
    }
}

/// The `--explain` tables: per workload the step's structure, then the prediction on
/// each preset with its bound.
pub fn explain() -> String {
    let mut out = String::from(
        "### Structure of a step (full size; per device where the structure differs)\n\n\
         | WL | device | dispatches/step | submissions/epoch | host waits/epoch | workgroups per dispatch (min–max) | MB read+written/step | MFLOP/step |\n\
         |---|---|---:|---:|---:|---|---:|---:|\n",
    );
    let iterative = [Workload::W1, Workload::W2, Workload::W3, Workload::W4];
    for w in iterative {
        for dev in &PRESETS {
            let c = step_cost(w, dev);
            let wg = c.dispatches.iter().map(|d| d.workgroups);
            let (lo, hi) = (wg.clone().min().unwrap_or(0), wg.max().unwrap_or(0));
            out += &format!(
                "| {} | {} | {:.3} | {} | {} | {lo}–{hi} | {:.3} | {:.3} |\n",
                w.id(),
                dev.name,
                c.dispatches_per_step(),
                c.submissions_per_epoch,
                c.waits_per_epoch,
                c.bytes() / 1e6,
                c.flops() / 1e6
            );
        }
    }
    out += "\n### Predicted time per step\n\n| WL |";
    for dev in &PRESETS {
        out += &format!(" {} |", dev.name);
    }
    out += "\n|---|";
    out += &"---|".repeat(PRESETS.len());
    out += "\n";
    for w in iterative {
        out += &format!("| {} |", w.id());
        for dev in &PRESETS {
            let pr = step_cost(w, dev).predict(dev);
            out += &format!(" {} ({}) |", fmt_ms(pr.ms), pr.bound);
        }
        out += "\n";
    }
    out += "\nDevices: ";
    out += &PRESETS
        .iter()
        .map(|d| {
            format!(
                "{}: launch {} µs, host round trip {} µs, {} GB/s, {} GFLOP/s, {} units, barrier {} µs, one workgroup's chain {} GB/s, {} epochs ahead where an epoch is short, {}, kernels: gradient {:?}, many-step {:?}, products {:?}, MLP step {:?}",
                d.name, d.launch_us, d.host_us, d.bandwidth_gbs, d.gflops, d.units, d.barrier_us, d.chain_gbs, d.epochs_ahead,
                if d.masked_switch { "a switch costs every case" } else { "a switch costs one case" },
                d.glm_grad, d.glm_epoch, d.matmul, d.mlp
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    out += ".\n";
    out
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{:.1} µs", ms * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structure_follows_the_engine() {
        let lava = &PRESETS[2];
        let h100 = &PRESETS[0];
        let w1 = step_cost(Workload::W1, lava);
        assert_eq!(w1.dispatches_per_step(), 1.0 / 16.0);
        assert_eq!(step_cost(Workload::W3, lava).dispatches_per_step(), 9.0);
        // The fused MLP step on a GPU: two passes and the update.
        assert_eq!(step_cost(Workload::W3, h100).dispatches_per_step(), 3.0);
        // W4: 256 MB of features span two of lavapipe's 128 MiB bindings, one on a GPU.
        let w4 = step_cost(Workload::W4, lava);
        assert_eq!(w4.dispatches_per_step(), 2.0 + 1.0 + 1.0);
        assert_eq!(step_cost(Workload::W4, h100).dispatches_per_step(), 3.0);
        // Thousands of workgroups for the full batch on a GPU.
        let top = step_cost(Workload::W4, h100).dispatches[0].workgroups;
        assert!(top >= 1000, "{top}");
        // A full batch reads its 256 MB once (80 µs on an H100), and each of its epochs
        // is one step with a host round trip (95 µs measured on the H200): host-bound
        // when each epoch is read before the next is queued; with two queued ahead the
        // round trip hides behind them and the step is the device's.
        let w4 = step_cost(Workload::W4, h100);
        let one_by_one = Device {
            epochs_ahead: 0,
            ..*h100
        };
        assert_eq!(w4.predict(&one_by_one).bound, "host");
        assert_eq!(w4.predict(h100).bound, "memory");
        assert!(w4.predict(h100).ms < 0.6 * w4.predict(&one_by_one).ms);
        // A mini-batch epoch is long: nothing queued ahead, the same prediction.
        let mini = step_cost(Workload::W1, h100);
        assert_eq!(mini.predict(h100), mini.predict(&one_by_one));
        assert!(explain().contains("| W4 |"));
        // The many-step kernel is one workgroup's chain; on lavapipe its 10⁶ rows span
        // two bindings and the switch between them costs both.
        assert!(w1.dispatches[0].chain);
        let on_h100 = step_cost(Workload::W1, h100).bytes();
        assert_eq!(
            w1.bytes() - 256.0 * 2.0 * 4.0,
            2.0 * (on_h100 - 256.0 * 2.0 * 4.0)
        );
    }

    #[test]
    fn the_doc_page_holds_these_tables() {
        let page = include_str!("../../docs/COST_MODEL.md");
        assert!(
            page.contains(&explain()),
            "docs/COST_MODEL.md is stale: paste `gradflow bench --explain` under its text"
        );
    }

    #[test]
    fn h200_predictions_are_within_two_of_the_device_run() {
        // BENCHMARKS.md, 2026-12-04 later, run 4, ms a step: W1's many-step kernel step
        // (`bench --kernels`); W4's step from its parts (gradient and finish 0.191, the
        // update, one round trip). W3: the fused MLP step through the engine, end to end
        // (`bench --kernels`, 2026-12-04 evening, run 5).
        // Those runs read each epoch before queuing the next (epochs ahead came later).
        let h200 = &Device {
            epochs_ahead: 0,
            ..PRESETS[1]
        };
        for (w, ms) in [
            (Workload::W1, 0.0106),
            (Workload::W3, 0.0238),
            (Workload::W4, 0.36),
        ] {
            let predicted = step_cost(w, h200).predict(h200).ms;
            let ratio = ms / predicted;
            assert!(
                (0.5..=2.0).contains(&ratio),
                "{}: {predicted} ms predicted, {ms} measured",
                w.id()
            );
        }
    }

    #[test]
    fn lavapipe_predictions_are_within_two_of_the_recorded_times() {
        // BENCHMARKS.md, 2026-12-04 (issue 18): full size, ms a step, on the machine the
        // preset was probed on. The preset's numbers come from kernel probes, not these.
        let measured = [
            (Workload::W1, 0.325),
            (Workload::W2, 0.333),
            (Workload::W3, 8.155),
            (Workload::W4, 147.5),
        ];
        let lava = &PRESETS[2];
        for (w, ms) in measured {
            let predicted = step_cost(w, lava).predict(lava).ms;
            let ratio = ms / predicted;
            assert!(
                (0.5..=2.0).contains(&ratio),
                "{}: {predicted} ms predicted, {ms} measured",
                w.id()
            );
        }
    }
}
