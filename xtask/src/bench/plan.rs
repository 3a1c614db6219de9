//! The steps of a run, in the order they run.

use super::load::Shape;
use super::scenarios::{Scenario, Series, Target};
use super::{BenchArgs, ScenarioArg, Via};

#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub series: Series,
    pub shape: Shape,
}

/// Every step, in the order they run: per scenario, the closed-loop counts then the
/// open-loop rates; at each, the peer before ours.
pub fn plan(args: &BenchArgs) -> Vec<Step> {
    let all = args.scenario.contains(&ScenarioArg::All);
    let chosen = |s: ScenarioArg| all || args.scenario.contains(&s);
    let shapes: Vec<Shape> = args
        .clients
        .iter()
        .map(|&clients| Shape::Closed { clients })
        .chain(args.rate.iter().map(|&rate| Shape::Open { rate }))
        .collect();
    let mut via = Vec::new();
    if matches!(args.via, Via::Direct | Via::Both) {
        via.push(Target::Direct);
    }
    if matches!(args.via, Via::Gateway | Via::Both) {
        via.push(Target::Gateway);
    }
    let mut out = Vec::new();
    for (arg, scenario) in [
        (ScenarioArg::OneCall, Scenario::OneCall),
        (ScenarioArg::Saga, Scenario::Saga),
        (ScenarioArg::HotSku, Scenario::HotSku),
    ] {
        if !chosen(arg) {
            continue;
        }
        let mut targets = match scenario {
            Scenario::Saga => vec![Target::Gateway],
            _ => via.clone(),
        };
        if scenario == Scenario::OneCall && args.peer_url.is_some() {
            targets.insert(0, Target::Peer);
        }
        for &shape in &shapes {
            for &target in &targets {
                out.push(Step {
                    series: Series { scenario, target },
                    shape,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::BenchArgs;

    #[test]
    fn the_peer_runs_before_ours_at_each_step() {
        let mut args = BenchArgs::smoke();
        args.scenario = vec![ScenarioArg::All];
        args.clients = vec![1, 8];
        args.rate = vec![50.0];
        args.via = Via::Both;
        args.peer_url = Some("http://127.0.0.1:18001".into());
        let steps: Vec<(String, String)> = plan(&args)
            .iter()
            .map(|s| (s.series.label(), s.shape.label()))
            .collect();
        let one_call: Vec<&str> = steps.iter().take(9).map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            one_call,
            [
                "one-call (peer)",
                "one-call",
                "one-call via gateway",
                "one-call (peer)",
                "one-call",
                "one-call via gateway",
                "one-call (peer)",
                "one-call",
                "one-call via gateway",
            ]
        );
        assert_eq!(steps[6].1, "50 orders/s offered");
        // The saga goes through the gateway only; the hot SKU where one-call goes.
        assert_eq!(steps.len(), 9 + 3 + 6);
        assert_eq!(steps[9].0, "saga");
        assert_eq!(steps[12].0, "hot-sku");
    }
}
