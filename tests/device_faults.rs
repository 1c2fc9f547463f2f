//! Device faults come back as `Error`s, never panics: a device that is lost mid-life, and
//! requests beyond the device's limits.

mod common;

use common::fresh_gpu;
use gradflow::data::Synthetic;
use gradflow::model::LinearRegression;
use gradflow::{Backend, Error, TrainConfig, Trainer};

/// A destroyed device (what a driver reset or an unplugged GPU look like to wgpu) fails
/// every later fit with `Error::Device` saying the device was lost.
#[test]
fn a_lost_device_is_an_error() {
    let Some(ctx) = fresh_gpu("a_lost_device_is_an_error") else {
        return;
    };
    let data = Synthetic::linear(500, 4).seed(1).dataset().unwrap();
    let trainer = Trainer::new(TrainConfig::default().epochs(2).backend(Backend::Gpu))
        .unwrap()
        .with_gpu(ctx.clone());
    trainer.fit(&mut LinearRegression::new(), &data).unwrap();
    ctx.device().destroy();
    let _ = ctx.device().poll(wgpu::PollType::wait_indefinitely());
    let err = trainer
        .fit(&mut LinearRegression::new(), &data)
        .unwrap_err();
    assert!(matches!(err, Error::Device { .. }), "{err}");
    assert!(err.to_string().contains("lost"), "{err}");
    // And again: the loss is remembered, not reported once.
    let again = trainer
        .fit(&mut LinearRegression::new(), &data)
        .unwrap_err();
    assert!(again.to_string().contains("lost"), "{again}");
}

/// A buffer beyond the device's `max_buffer_size` is refused before wgpu sees it.
#[test]
fn a_buffer_beyond_the_device_is_refused() {
    let Some(ctx) = fresh_gpu("a_buffer_beyond_the_device_is_refused") else {
        return;
    };
    let too_many = (ctx.limits().max_buffer_size / 4 + 1) as usize;
    let err = ctx.storage("too large", too_many).unwrap_err();
    match err {
        Error::DeviceLimit {
            requested, limit, ..
        } => {
            assert!(requested > limit, "{requested} ≤ {limit}");
        }
        other => panic!("expected DeviceLimit, got {other}"),
    }
}
