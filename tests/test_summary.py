"""The report's summary comes from the data: fabricated scaling tables in, exact verdicts out; two tables of
the same strategies give two different verdicts."""

import math

import pandas as pd
from hpc_dl.analysis import summary

GROUP = "resnet18 / fashion-mnist / bs 64 / fp32 / cpu"


def table(rows: list[tuple], model: str = "resnet18", dataset: str = "fashion-mnist") -> pd.DataFrame:
    """A scaling table: (strategy, workers, samples/s, quality, peak MiB) per point; speedup and efficiency
    against each strategy's fewest workers, as collect computes them."""
    df = pd.DataFrame(rows, columns=["strategy", "workers", "throughput", "quality", "peak_memory_mib"])
    base = df.loc[df.groupby("strategy")["workers"].idxmin(), ["strategy", "workers", "throughput"]]
    df = df.merge(base.rename(columns={"workers": "baseline_workers", "throughput": "base"}), on="strategy")
    df["speedup"] = df["throughput"] / df["base"]
    df["efficiency"] = df["speedup"] / (df["workers"] / df["baseline_workers"])
    quality = "test_perplexity" if model.startswith("gpt") else "test_accuracy"
    return (
        df.drop(columns="base")
        .rename(columns={"quality": quality})
        .assign(
            variant="-",
            model=model,
            dataset=dataset,
            batch_size=64,
            precision="fp32",
            device="cpu",
            nodes=1,
            runs=1,
            throughput_ci_low=math.nan,
            throughput_ci_high=math.nan,
            scaling="weak",
        )
    )


def breakdown(scaling: pd.DataFrame, communication: dict[tuple, float]) -> pd.DataFrame:
    """The time breakdown of every point: 1 s of compute; `communication` seconds where given."""
    comm = [communication.get((p.strategy, p.workers), 0.0) for p in scaling.itertuples()]
    return scaling[["strategy", "variant", "model", "dataset", "batch_size", "precision", "device", "workers"]].assign(
        nodes=1,
        time_per_epoch_s=[1.4 + c for c in comm],
        data_s=0.1,
        forward_s=0.3,
        backward_compute_s=0.5,
        communication_s=comm,
        optimizer_s=0.2,
        other_s=0.3,
        bound=["communication" if c > 1.0 else "compute" for c in comm],
    )


def texts(verdicts: list[summary.Verdict]) -> list[tuple[str, str]]:
    assert {v.group for v in verdicts} == {GROUP}
    return [(v.kind, v.text) for v in verdicts]


def test_fsdp_saves_memory_psgd_costs_accuracy_and_efficiency_falls():
    s = table(
        [
            ("ddp", 1, 100.0, 0.91, 900.0),
            ("ddp", 2, 190.0, 0.91, 910.0),
            ("ddp", 4, 360.0, 0.90, 920.0),
            ("fsdp", 1, 95.0, 0.91, 900.0),
            ("fsdp", 2, 170.0, 0.91, 500.0),
            ("fsdp", 4, 250.0, 0.90, 300.0),
            ("psgd", 1, 110.0, 0.91, 930.0),
            ("psgd", 2, 200.0, 0.88, 930.0),
            ("psgd", 4, 300.0, 0.84, 930.0),
        ]
    )
    assert texts(summary.summarize(s, breakdown(s, {}))) == [
        ("fastest", "fastest: ddp at 4 workers, 360.0 samples/s (3.60x its 1-worker baseline)"),
        ("efficiency", "best efficiency: ddp at 2 workers, 0.95 (from 1 worker)"),
        ("floor", "efficiency falls below 0.8: fsdp from 4 workers (0.66), psgd from 4 workers (0.68)"),
        ("bound", "compute-bound: all 9 timed point(s)"),
        ("memory", "fsdp uses 0.33x ddp's peak memory per rank at 4 workers (300 vs 920 MiB)"),
        (
            "quality",
            "test acc against ddp at the same workers (higher is better): psgd -0.060 at 4 workers (0.840 vs "
            "0.900); no cost: fsdp (+0.000)",
        ),
        ("repeats", "9 of 9 point(s) ran once: no interval to judge them by"),
    ]


def test_the_same_strategies_other_numbers_other_verdicts():
    s = table(
        [
            ("ddp", 1, 100.0, 0.90, 900.0),
            ("ddp", 2, 180.0, 0.90, 910.0),
            ("ddp", 4, 340.0, 0.90, 920.0),
            ("fsdp", 1, 100.0, 0.90, 950.0),
            ("fsdp", 2, 185.0, 0.90, 960.0),
            ("fsdp", 4, 330.0, 0.91, 990.0),
            ("psgd", 1, 100.0, 0.90, 900.0),
            ("psgd", 2, 195.0, 0.90, 910.0),
            ("psgd", 4, 380.0, 0.90, 920.0),
        ]
    )
    wide = (s["strategy"] == "ddp") & (s["workers"] == 4)
    s.loc[wide, ["runs", "throughput_ci_low", "throughput_ci_high"]] = [3, 300.0, 380.0]
    runs = s[["strategy", "variant", "model", "dataset", "batch_size", "precision", "device", "workers", "nodes"]]
    runs = runs.assign(state="COMPLETED", device_name="Xeon 8480", node_list="c1", exclusive=True)
    runs.loc[wide, ["node_list", "exclusive"]] = ["c[3,5]", False]  # SLURM's compressed list stays whole
    verdicts = summary.summarize(s, breakdown(s, {("ddp", 4): 1.5}), runs)
    assert texts(verdicts) == [
        ("fastest", "fastest: psgd at 4 workers, 380.0 samples/s (3.80x its 1-worker baseline)"),
        ("efficiency", "best efficiency: psgd at 2 workers, 0.97 (from 1 worker)"),
        ("floor", "efficiency stays at or above 0.8 up to 4 workers (6 scaled point(s))"),
        ("bound", "communication-bound: ddp at 4 workers (1.50 s of 2.90 s per epoch communicating)"),
        ("bound", "compute-bound: the other 8 timed point(s)"),
        ("memory", "no strategy uses less peak memory per rank than ddp at the same workers"),
        (
            "quality",
            "test acc against ddp at the same workers (higher is better): no cost: psgd, fsdp (+0.000 to +0.010)",
        ),
        ("repeats", "add repeats: ddp at 4 workers (95% CI 300.0-380.0, 24 % of the median)"),
        ("repeats", "8 of 9 point(s) ran once: no interval to judge them by"),
        ("shared", "shared nodes (not --exclusive), other jobs may have slowed them: ddp at 4 workers on c[3,5]"),
    ]
    context = summary.point_context(s, runs).set_index(["strategy", "workers"])
    assert list(context.loc[("ddp", 4), ["node_names", "device_model", "shared"]]) == ["c[3,5]", "Xeon 8480", True]
    assert context.loc[("ddp", 2), "shared"] == False  # noqa: E712 (numpy's False)


def test_old_runs_without_memory_or_nodes_and_a_language_model_lower_is_better():
    """No peak memory column, no node list: no memory and no shared verdict; a language model's rate is its
    tokens/s and its perplexity is better lower."""
    s = table(
        [
            ("ddp", 1, 10.0, 4.0, 0.0),
            ("ddp", 2, 19.0, 4.0, 0.0),
            ("fsdp", 1, 10.0, 4.0, 0.0),
            ("fsdp", 2, 18.0, 4.5, 0.0),
        ],
        model="gpt-tiny",
        dataset="synthetic-text",
    ).drop(columns="peak_memory_mib")
    s["throughput_tokens_per_s"] = s["throughput"] * 256
    runs = s[["strategy", "variant", "model", "dataset", "batch_size", "precision", "device", "workers", "nodes"]]
    verdicts = summary.summarize(s, None, runs.assign(state="COMPLETED", device_name="cpu"))
    assert [(v.kind, v.text) for v in verdicts] == [
        ("fastest", "fastest: ddp at 2 workers, 4864.0 tokens/s (1.90x its 1-worker baseline)"),
        ("efficiency", "best efficiency: ddp at 2 workers, 0.95 (from 1 worker)"),
        ("floor", "efficiency stays at or above 0.8 up to 2 workers (2 scaled point(s))"),
        (
            "quality",
            "perplexity against ddp at the same workers (lower is better): fsdp +0.500 at 2 workers (4.500 vs 4.000)",
        ),
        ("repeats", "4 of 4 point(s) ran once: no interval to judge them by"),
    ]
    assert summary.markdown(verdicts)[:4] == [
        "",
        "**gpt-tiny / synthetic-text / bs 64 / fp32 / cpu**",
        "",
        ("- fastest: ddp at 2 workers, 4864.0 tokens/s (1.90x its 1-worker baseline)."),
    ]
