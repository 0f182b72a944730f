//! `prism-adapters placements`: what an adapter costs for each placement and rank on a model
//! config, from its conv list — the size and FLOP columns of the placement table that held-out
//! quality then decides between.

use std::fmt::Write as _;

use prism_engine::graph::LoraPlacement;
use prism_engine::unet::UnetConfig;

/// The side an edit works at.
const EDIT_SIDE: usize = 512;

/// A markdown table: for every placement (LoRA on the convs at level `L` and coarser) and rank,
/// the adapter's values, its size as a fraction of the base, the memory of `tools` merged int8
/// models against one base with `tools` adapters, and the forward's extra multiply-adds.
pub fn placement_table(config: &UnetConfig, ranks: &[usize], tools: usize) -> String {
    let base = config.parameter_count() as f64;
    let flops = config.flops(EDIT_SIDE, EDIT_SIDE) as f64;
    let mut out = format!(
        "channels {:?}, blocks {:?}: {:.2} M parameters, {:.1} GFLOP per {EDIT_SIDE}x{EDIT_SIDE}\n\n\
         | placement | convs | rank | adapter values | of the base | {tools} merged / unified | FLOP overhead |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        config.channels,
        config.blocks,
        base / 1e6,
        flops / 1e9
    );
    let convs = config.convs();
    for min_level in 0..config.channels.len() {
        let placement = LoraPlacement { min_level };
        let covered = convs.iter().filter(|spec| placement.covers(spec)).count();
        for &rank in ranks {
            let values = config.placed_lora_values(rank, placement) as f64;
            let fraction = values / base;
            let ratio = tools as f64 / (1.0 + tools as f64 * fraction);
            let overhead = config.placed_lora_flops(EDIT_SIDE, EDIT_SIDE, rank, placement) as f64 / flops;
            let _ = writeln!(
                out,
                "| levels >= {min_level} | {covered} | {rank} | {values:.0} | {:.2}% | {ratio:.2}x | {:.1}% |",
                fraction * 100.0,
                overhead * 100.0
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_conv_at_rank_8_is_what_the_shipped_adapters_hold() {
        let config = UnetConfig::new(vec![32, 64, 128], vec![1, 1, 2], 32).unwrap();
        let table = placement_table(&config, &[8], 7);
        // 87,008 values: the shipped rank-8 adapters (model card), 9.77% of 890,956 parameters.
        assert!(table.contains("| levels >= 0 | 18 | 8 | 87008 | 9.77% |"), "{table}");
        assert_eq!(table.lines().filter(|l| l.starts_with("| levels")).count(), 3);
    }
}
