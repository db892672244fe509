"""The scaling figures read at a glance: legend outside the axes, an ideal line per series from its own
baseline, every series drawn (a one-point series as a marker), precision and device in the labels."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from hpc_dl.analysis import plots


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def scaling(rows: list[tuple]) -> pd.DataFrame:
    cols = ["strategy", "model", "workers", "baseline_workers", "speedup", "throughput", "precision", "device"]
    df = pd.DataFrame(rows, columns=cols)
    return df.assign(variant="-", dataset="fashion-mnist", batch_size=64)


@pytest.fixture
def df() -> pd.DataFrame:
    return scaling(
        [
            ("ddp", "mnist-cnn", 1, 1, 1.0, 100.0, "fp32", "cpu"),
            ("ddp", "mnist-cnn", 2, 1, 1.8, 180.0, "fp32", "cpu"),
            ("pipeline", "mnist-cnn", 2, 2, 1.0, 90.0, "fp32", "cpu"),
            ("pipeline", "mnist-cnn", 4, 2, 1.5, 135.0, "fp32", "cpu"),
            ("dp", "mnist-cnn", 1, 1, 1.0, 95.0, "bf16", "cpu"),
        ]
    )


def test_speedup_legend_outside_ideal_per_series_and_every_series_drawn(df):
    fig = plots.speedup_figure(df)
    (ax,) = fig.axes
    assert ax.get_legend() is None and len(fig.legends) == 1  # the figure's legend, beside the axes
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [
        "ddp / mnist-cnn / bs 64 / fp32 / cpu",
        "dp / mnist-cnn / bs 64 / bf16 / cpu (1 worker(s) only)",
        "pipeline / mnist-cnn / bs 64 / fp32 / cpu",
        plots.IDEAL_NOTE,
    ]
    lines = ax.get_lines()
    data = [line for line in lines if line.get_label() in labels]
    assert [len(line.get_xdata()) for line in data] == [2, 1, 2]
    assert len({line.get_marker() for line in data}) == 3
    assert all(line.get_marker() not in (None, "None", "") for line in data)
    ideals = [(list(line.get_xdata()), list(line.get_ydata())) for line in lines if line.get_linestyle() == ":"]
    assert ideals == [([1.0, 2.0], [1.0, 2.0]), ([2.0, 4.0], [1.0, 2.0])]  # each from its own baseline
    dp_x = data[1].get_xdata()[0]
    ddp_x = data[0].get_xdata()[0]
    assert dp_x != ddp_x and abs(dp_x - 1) < 0.1  # dodged beside the others at 1 worker, not hidden


def test_throughput_figure_has_the_same_series(df):
    fig = plots.throughput_figure(df)
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 3


def test_labels_without_precision_or_device_columns(df):
    bare = df.drop(columns=["precision", "device"])
    assert list(plots._label(bare))[:1] == ["ddp / mnist-cnn / bs 64"]


def test_comparison_puts_every_strategy_of_a_group_on_one_axis_and_says_device_precision_baseline(df):
    two = pd.concat([df, df.assign(model="resnet18")], ignore_index=True).assign(efficiency=1.0, precision="fp32")
    fig = plots.comparison_figure(two, "compare_speedup")
    assert [ax.get_title() for ax in fig.axes] == [
        "Speedup vs workers: mnist-cnn / fashion-mnist / bs 64 / fp32 / cpu",
        "Speedup vs workers: resnet18 / fashion-mnist / bs 64 / fp32 / cpu",
    ]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["ddp", "dp (1 worker(s) only)", "pipeline", plots.IDEAL_NOTE]
    assert (
        fig.get_supxlabel() == "device: cpu | precision: fp32 | baseline: each series' fewest workers, 1 (pipeline: 2)"
    )
    assert plots.comparison_figure(two, "peak_memory") is None  # runs that recorded no memory
    memory = plots.comparison_figure(two.assign(peak_memory_mib=500.0), "peak_memory")
    assert memory.axes[0].get_ylabel() == "peak memory per rank (MiB)"
    assert memory.get_supxlabel().endswith("baseline: ddp (the same workers)")


def test_every_report_figure_carries_its_caption(df):
    figs = plots.figures(df.assign(efficiency=1.0, time_per_epoch_s=1.0, test_accuracy=0.9), all_figures=True)
    assert list(figs) == [
        "compare_throughput",
        "compare_speedup",
        "compare_efficiency",
        "throughput",
        "speedup",
        "efficiency",
        "time_per_epoch",
        "accuracy",
    ]
    captions = {n: [t.get_text() for t in f.texts] + [f.get_supxlabel()] for n, f in figs.items()}
    assert all(
        any(c.startswith("device: cpu | precision: fp32, bf16 | baseline: ") for c in v) for v in captions.values()
    )
