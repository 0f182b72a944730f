use prism_adapters::quad::heldout_examples;
use prism_adapters::recipe::load_base;
use prism_adapters::tasks::Task;
use prism_engine::quant::RangeObserver;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let data = Path::new("data");
    let base = if std::env::args().nth(1).as_deref() == Some("init") {
        let config = prism_adapters::recipe::shipped_config()?;
        prism_engine::unet::Unet::new(&config, &prism_engine::unet::Unet::random_tensors(&config, 1, &candle_core::Device::Cpu)?)?
    } else if let Some(path) = std::env::args().nth(1) {
        let file = prism_engine::tensorfile::TensorFile::read(Path::new(&path))?;
        let config = prism_adapters::recipe::shipped_config()?;
        let count = config.convs().len() * 3;
        let tensors: Vec<candle_core::Tensor> = (0..count)
            .map(|i| {
                let raw = &file.tensors[&format!("param.{i}")];
                candle_core::Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &candle_core::Device::Cpu).unwrap()
            })
            .collect();
        prism_adapters::recipe::model_from_tensors(&config, &tensors)?
    } else {
        load_base(data)?
    };
    let ex = &heldout_examples(data, Task::Denoise, 128)?[0];
    let input = prism_engine::job::model_input(&ex.input, &ex.mask, ex.hide_masked)?;
    let mut obs = RangeObserver::default();
    let res = base.forward(&input, None, &mut obs)?;
    for (k, v) in &obs.absmax {
        println!("{k} {v}");
    }
    println!("residual mean {} var {}", res.mean_all()?, res.var(3)?.mean_all()?);

    Ok(())
}
