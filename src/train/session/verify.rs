//! Verify mode: every k-th GPU step rerun from the same parameters by the CPU reference
//! kernels, and the loss, the gradients and the updated parameters compared.

use super::gpu::GpuSession;
use crate::cpu::engine::{CpuEngine, Rows};
use crate::cpu::kernels::Reference;
use crate::data::{Batch, EpochPlan, HostTargets, RowSource, RowWeights, gather_rows};
use crate::error::{Error, Result};
use crate::program::{Program, StepScalars};
use crate::train::{Deviation, Verify};

impl GpuSession<'_> {
    /// One GPU step checked against the CPU twin started from the same parameters.
    pub(super) fn verified_step(&mut self, batch: Batch, update: &StepScalars) -> Result<()> {
        // Taken out for the step, so that the engine and the verifier borrow apart.
        let Some(mut v) = self.verify.take() else {
            return self.engine_step(batch, update);
        };
        let checked = self.check_step(&mut v, batch, update);
        self.verify = Some(v);
        checked
    }

    fn check_step(
        &mut self,
        v: &mut Verifier<'_>,
        batch: Batch,
        update: &StepScalars,
    ) -> Result<()> {
        v.cpu.set_params(&self.engine.params()?)?;
        v.cpu.set_optimizer_state(&self.engine.optimizer_state()?)?;
        let plan = self.plan.as_deref().ok_or_else(|| Error::Device {
            message: "verify mode: a step before the epoch began".into(),
        })?;
        v.load(plan, batch)?;
        let rows = Rows::Range {
            start: 0,
            len: batch.len,
        };
        v.cpu.forward(rows)?;
        let cpu_loss = v.cpu.loss(rows)?;
        self.engine_step(batch, update)?;
        if !cpu_loss.is_finite() {
            return Ok(()); // the halt flag reports it; nothing to compare
        }
        v.cpu.backward(rows)?;
        let cpu_grads: Vec<Vec<f32>> = v.cpu.grads().into_iter().map(<[f32]>::to_vec).collect();
        v.cpu.update(self.engine.rule(), update);
        let gpu_loss = self.engine.read_losses(self.queued + 1)?[self.queued];
        v.compare(self.step, "loss", &[gpu_loss], &[cpu_loss as f32])?;
        let params = v.cpu.program().params.clone();
        for (decl, cpu_grad) in params.iter().zip(&cpu_grads) {
            let gpu_grad = self.engine.read_buf(decl.grad)?;
            v.compare(
                self.step,
                &format!("grad {}", decl.name),
                &gpu_grad[..cpu_grad.len()],
                cpu_grad,
            )?;
        }
        let (gpu_after, cpu_after) = (self.engine.params()?, v.cpu.params());
        for (decl, (g, c)) in params.iter().zip(gpu_after.iter().zip(&cpu_after)) {
            v.compare(self.step, decl.name, g, c)?;
        }
        Ok(())
    }
}

/// The CPU twin of a GPU fit and the largest deviations seen so far. It gathers each
/// checked batch from the source itself, so it checks streamed and resident fits alike.
pub(super) struct Verifier<'a> {
    cpu: CpuEngine<'static, f32, Reference>,
    source: &'a dyn RowSource,
    row_weights: Option<&'a RowWeights<'a>>,
    weights: Vec<f32>,
    rows: Vec<u32>,
    x: Vec<f32>,
    targets: HostTargets,
    pub(super) config: Verify,
    pub(super) deviations: Vec<Deviation>,
}

impl<'a> Verifier<'a> {
    pub(super) fn new(
        program: &Program,
        source: &'a dyn RowSource,
        row_weights: Option<&'a RowWeights<'a>>,
        cap: usize,
        config: Verify,
    ) -> Self {
        let kind = source.target_kind();
        Verifier {
            cpu: CpuEngine::for_batches(program.clone(), source.p(), kind, cap).on(Reference),
            source,
            row_weights,
            weights: Vec::new(),
            rows: Vec::with_capacity(cap),
            x: Vec::new(),
            targets: HostTargets::empty(kind),
            config,
            deviations: Vec::new(),
        }
    }

    /// Gathers `batch`'s rows from the source into the CPU twin.
    fn load(&mut self, plan: &EpochPlan, batch: Batch) -> Result<()> {
        self.rows.clear();
        self.rows.extend(plan.rows(batch));
        let into = (&mut self.x, &mut self.targets, &mut self.weights);
        gather_rows(self.source, self.row_weights, &self.rows, into)?;
        let weights = self.row_weights.map(|_| &self.weights[..]);
        self.cpu.load(&self.x, self.targets.view(), weights)
    }

    /// Folds one tensor comparison into the report; an error past the tolerance
    /// `|gpu − cpu| ≤ max(rtol · max(|gpu|, |cpu|), atol)`.
    fn compare(&mut self, step: u64, tensor: &str, gpu: &[f32], cpu: &[f32]) -> Result<()> {
        let (mut max_abs, mut max_rel, mut worst) = (0f64, 0f64, None);
        for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
            let (g, c) = (f64::from(g), f64::from(c));
            let abs = (g - c).abs();
            let scale = g.abs().max(c.abs());
            let rel = if scale > 0.0 { abs / scale } else { 0.0 };
            max_abs = max_abs.max(abs);
            max_rel = max_rel.max(rel);
            let allowed = (self.config.rtol * scale).max(self.config.atol);
            if abs > allowed || abs.is_nan() {
                worst.get_or_insert((i, g, c));
            }
        }
        let entry = match self.deviations.iter_mut().find(|d| d.tensor == tensor) {
            Some(d) => d,
            None => {
                self.deviations.push(Deviation {
                    tensor: tensor.to_string(),
                    ..Deviation::default()
                });
                self.deviations.last_mut().expect("just pushed")
            }
        };
        entry.max_abs = entry.max_abs.max(max_abs);
        entry.max_rel = entry.max_rel.max(max_rel);
        entry.checks += 1;
        match worst {
            None => Ok(()),
            Some((index, gpu, cpu)) => Err(Error::VerifyMismatch {
                step,
                tensor: tensor.to_string(),
                index,
                gpu,
                cpu,
                rtol: self.config.rtol,
                atol: self.config.atol,
            }),
        }
    }
}
