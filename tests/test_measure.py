"""Measurement (issue 20): peak memory per rank, the GPU sampler, the allocation in exit.json, sacct's
accounting, --exclusive, and collect's memory, resource-hours and idle-unit columns.

No GPU here: the sampler's aggregation and thread are tested with a fake sample source. The real runs
(the fsdp-against-ddp peak, a SLURM sweep's resource-hours) are marked slow.
"""

import json
import subprocess
import threading

import pytest
import torch
from hpc_dl.analysis import collect as col
from hpc_dl.analysis import cost

from hpc_dl import profiles
from hpc_dl import submit as sub
from hpc_dl.backends import slurm_query
from hpc_dl.errors import ProfileError, SpecError
from hpc_dl.node import allocation, jobscript
from hpc_dl.runs import RunDir
from hpc_dl.spec import JobSpec
from hpc_dl.train import gpu_sampler, memory
from hpc_dl.train.events import Events

# -- peak memory and the events that carry it


class FakeSampler:
    def __init__(self):
        self.stopped = False

    def drain(self):
        return gpu_sampler.summarize([{0: (50.0, 1000.0, 200.0)}, {0: (70.0, 1200.0, 220.0)}])

    def stop(self):
        self.stopped = True


def test_epoch_stop_and_run_stop_carry_the_peak_and_a_gpu_sample_comes_first(tmp_path):
    run = RunDir(tmp_path / "r")
    sampler = FakeSampler()
    events = Events(run, 0, torch.device("cpu"), sampler)
    events.emit("run_start", world_size=1)
    events.emit("epoch_stop", epoch=1)
    events.emit("epoch_stop", epoch=1, recovered=True)
    events.emit("run_stop", status="success")
    events.close()
    logged = [json.loads(x) for x in run.rank_events(0).read_text().splitlines()]
    assert [e["event"] for e in logged] == ["run_start", "gpu_sample", "epoch_stop", "epoch_stop", "run_stop"]
    assert "peak_memory(MiB)" not in logged[0]
    assert logged[1]["epoch"] == 1 and logged[1]["gpus"] == [
        {"gpu": 0, "samples": 2, "util_mean(%)": 60.0, "memory_max(MiB)": 1200.0, "power_mean(W)": 210.0}
    ]
    for e in (logged[2], logged[4]):
        assert e["peak_memory(MiB)"] > 100 and e["peak_memory_source"] == "peak_rss"  # the interpreter and torch
    assert "peak_memory(MiB)" not in logged[3]  # recovered from the checkpoint: measured back then
    assert sampler.stopped


def test_the_cpu_peak_is_the_process_high_water_mark():
    before = memory.peak(None)["peak_memory(MiB)"]
    block = bytearray(64 * 2**20)  # touched: 64 MiB resident
    block[::4096] = b"x" * len(block[::4096])
    after = memory.peak(torch.device("cpu"))["peak_memory(MiB)"]
    assert after >= before and after > 64
    del block


# -- the GPU sampler, with a fake source


def test_summarize_means_util_and_power_and_takes_the_most_memory_per_gpu():
    samples = [{0: (10.0, 500.0, 100.0), 1: (90.0, 700.0, 300.0)}, {0: (30.0, 800.0, 120.0), 1: (100.0, 600.0, 310.0)}]
    assert gpu_sampler.summarize(samples) == {
        "gpus": [
            {"gpu": 0, "samples": 2, "util_mean(%)": 20.0, "memory_max(MiB)": 800.0, "power_mean(W)": 110.0},
            {"gpu": 1, "samples": 2, "util_mean(%)": 95.0, "memory_max(MiB)": 700.0, "power_mean(W)": 305.0},
        ],
        "samples": 2,
        "util_mean(%)": 57.5,
    }
    assert gpu_sampler.summarize([]) == {"gpus": [], "samples": 0, "util_mean(%)": None}


def test_the_sampler_thread_collects_until_drained_and_stops():
    calls, third, release = [], threading.Event(), threading.Event()

    def source():
        calls.append(1)
        if len(calls) == 3:
            third.set()
        if len(calls) > 3:
            release.wait(30)  # held: the test decides when the fourth sample comes, not a clock
        return {0: (float(len(calls)), 100.0, 50.0)}

    sampler = gpu_sampler.GpuSampler(source, interval=0.001).start()
    assert third.wait(30)
    while len(calls) < 4:  # the fourth call is in the source, the first three are kept
        threading.Event().wait(0.01)
    summary = sampler.drain()
    assert summary["samples"] == 3 and summary["gpus"][0]["util_mean(%)"] == 2.0
    sampler.stop()
    release.set()
    sampler._thread.join(30)
    assert not sampler._thread.is_alive()


def test_no_sampler_on_cpu_workers_nor_on_a_nodes_other_ranks():
    assert gpu_sampler.start_for(torch.device("cpu"), 0) is None
    assert gpu_sampler.start_for(torch.device("cuda", 1), 1) is None


# -- the allocation the job wrapper records


def test_slurm_host_lists_and_cpu_counts():
    assert allocation.expand_hostlist("n[1-3,7],gpu01") == ["n1", "n2", "n3", "n7", "gpu01"]
    assert allocation.expand_hostlist("c[098-101]-ib") == ["c098-ib", "c099-ib", "c100-ib", "c101-ib"]
    assert allocation.expand_hostlist("n1") == ["n1"]
    assert allocation.cpus_per_node("4(x2),2") == 10 and allocation.cpus_per_node("") is None


def test_the_allocation_is_slurms_under_slurm_and_what_the_run_asked_elsewhere():
    env = {
        "SLURM_JOB_ID": "7",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "n[1-2]",
        "SLURM_GPUS_ON_NODE": "2",
        "SLURM_JOB_CPUS_PER_NODE": "2(x2)",
    }
    got = allocation.from_environ(env, gpus=1, cpus=1, exclusive=True)
    assert got == allocation.Allocation(2, ("n1", "n2"), 4, 4, True, "slurm")
    assert (got.resource, got.units) == ("gpu", 4)
    asked = allocation.from_environ({}, gpus=0, cpus=3, exclusive=True)
    assert (asked.nodes, asked.gpus, asked.cpus, asked.exclusive, asked.source) == (1, 0, 3, False, "asked")
    assert (asked.resource, asked.units) == ("cpu", 3)
    assert allocation.Allocation.from_record(got.to_dict()) == got
    assert allocation.Allocation.from_record({"nodes": 1}) is None


def test_exit_records_add_up_every_attempts_wall_time(tmp_path):
    run = RunDir.create(tmp_path, "s", "r")
    run.spec.write_text(JobSpec(gpus=2, cpus_per_task=2).to_json())
    first = jobscript.held(run, {"started": 100.0, "ended": 160.0, "attempt": 1})
    assert (first["wall_s"], first["attempts_wall_s"]) == (60.0, 60.0)
    assert first["allocation"]["cpus"] == 4 and first["allocation"]["source"] == "asked"
    run.exit.write_text(json.dumps({"attempt": 1, **first}))
    second = jobscript.held(run, {"started": 200.0, "ended": 230.0, "attempt": 2})
    assert (second["wall_s"], second["attempts_wall_s"]) == (30.0, 90.0)


# -- sacct's accounting, from the one bulk call

SACCT = """\
12|COMPLETED|00:01:05|4|02:10.500|
12.batch|COMPLETED|00:01:05|4|02:10.500|2048K
12.0|COMPLETED|00:01:00|4|00:01.000|1.5G
13_1|RUNNING|1-00:00:02|2|00:00:00|
13_[2-3%1]|PENDING|00:00:00|2|00:00:00|
14|CANCELLED by 0|00:00:00|2|00:00:00|
"""


def test_sacct_lines_give_states_and_what_each_job_used():
    states, usage = slurm_query.parse_sacct(SACCT)
    assert states == {"12": "COMPLETED", "13_1": "RUNNING", "13_2": "PENDING", "13_3": "PENDING", "14": "CANCELLED"}
    assert usage == {
        "12": {
            "elapsed_s": 65.0,
            "alloc_cpus": 4,
            "total_cpu_s": 130.5,
            "cpu_efficiency": 0.502,
            "max_rss_mib": 1536.0,
        },
        "13_1": {
            "elapsed_s": 86402.0,
            "alloc_cpus": 2,
            "total_cpu_s": None,
            "cpu_efficiency": None,
            "max_rss_mib": None,
        },
        "14": {"elapsed_s": 0.0, "alloc_cpus": 2, "total_cpu_s": None, "cpu_efficiency": None, "max_rss_mib": None},
    }
    assert [slurm_query.duration_s(t) for t in ("1-02:03:04", "05:06.7", "", "x")] == [93784.0, 306.7, None, None]
    assert [slurm_query.rss_mib(t) for t in ("2048K", "3M", "1.5G", "512", "")] == [2.0, 3.0, 1536.0, 0.5, None]


def test_usage_comes_from_the_same_sacct_as_the_states(monkeypatch):
    asked = []

    def fake(argv, deadline):
        asked.append(argv[0])
        return SACCT if argv[0] == "sacct" else ""

    monkeypatch.setattr(slurm_query, "run_command", fake)
    monkeypatch.setattr(slurm_query, "_cache", {})
    monkeypatch.setattr(slurm_query, "_asked", {})
    assert slurm_query.query_states(["12", "14"]) == {"12": "COMPLETED", "14": "CANCELLED"}
    assert slurm_query.query_usage(["12", "14"])["12"]["max_rss_mib"] == 1536.0
    assert asked == ["sacct"]  # one call answered both


# -- --exclusive


def test_exclusive_asks_slurm_for_whole_nodes_and_a_profile_may_make_it_the_default(tmp_path, monkeypatch):
    from hpc_dl.render import sbatch_options

    assert "exclusive" not in sbatch_options(JobSpec(), profiles.load("discovery"))
    assert sbatch_options(JobSpec(exclusive=True), profiles.load("discovery"))["exclusive"] == ""
    text = (profiles.SHIPPED_DIR / "discovery.yaml").read_text() + "exclusive: true\n"
    (tmp_path / "user-profiles").mkdir()
    (tmp_path / "user-profiles" / "timing.yaml").write_text(text.replace("name: discovery", "name: timing"))
    timing = profiles.load("timing")
    assert timing.exclusive and sbatch_options(JobSpec(), timing)["exclusive"] == ""
    assert "exclusive" not in sbatch_options(JobSpec(exclusive=False), timing)  # --shared


def test_exclusive_is_refused_where_no_scheduler_reserves_nodes(tmp_path, hpcdl):
    result = hpcdl("submit", "--profile", "local", "--exclusive", "--dry-run")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: invalid exclusive: scheduler 'local' of profile 'local' cannot reserve whole nodes (use a SLURM "
        "profile, or leave --exclusive out)\n",
    )
    text = (profiles.SHIPPED_DIR / "local.yaml").read_text().replace("name: local", "name: mine")
    (tmp_path / "user-profiles").mkdir()
    path = tmp_path / "user-profiles" / "mine.yaml"
    path.write_text(text + "exclusive: true\n")
    with pytest.raises(ProfileError) as info:
        profiles.load("mine")
    line = len(text.splitlines()) + 1
    assert (
        str(info.value) == f"{path}:{line}: exclusive: true is invalid (scheduler 'local' cannot reserve whole nodes)"
    )
    with pytest.raises(SpecError, match=r"^invalid exclusive: 'yes' \(must be true or false\)$"):
        JobSpec(exclusive="yes")


def test_the_run_folder_records_whether_its_job_had_whole_nodes(tmp_path):
    run, _ = sub._prepare(JobSpec(exclusive=None), profiles.load("local"), tmp_path / "runs", "s", None)
    assert run.read_spec().exclusive is False  # resolved against the profile when it was submitted


# -- collect: memory, resource-hours, idle units


def fake_run(root, run_id: str, gpus: int, held: int, wall: float, peaks: list[float], util: float | None = None):
    """A finished 1-epoch run of `gpus` GPU workers whose job held `held` GPUs for `wall` seconds."""
    run = RunDir.create(root, "sweep", run_id)
    run.spec.write_text(JobSpec(gpus=gpus, epochs=1).to_json())
    for rank, peak in enumerate(peaks):
        events = [{"event": "run_start", "world_size": gpus, "device": "cuda", "device_name": "H100"}]
        if util is not None and rank == 0:
            events.append({"event": "gpu_sample", "epoch": 1, "gpus": [{"gpu": 0, "samples": 4, "util_mean(%)": util}]})
        events += [
            {"event": "epoch_stop", "epoch": 1, "time(s)": wall / 2, "samples": 1000, "throughput(samples/s)": 100.0},
            {"event": "eval", "epoch": 1, "test_accuracy": 0.5},
            {"event": "run_stop", "status": "success", "peak_memory(MiB)": peak, "peak_memory_source": "x"},
        ]
        events[-3]["peak_memory(MiB)"] = peak - 1
        run.rank_events(rank).write_text("".join(json.dumps({"time": 0, "rank": rank, **e}) + "\n" for e in events))
    alloc = allocation.Allocation(1, ("n1",), held, 8, False, "slurm").to_dict()
    run.exit.write_text(
        json.dumps({"state": "COMPLETED", "allocation": alloc, "wall_s": wall, "attempts_wall_s": wall})
    )
    run.result.write_text(json.dumps({"status": "success", "test_accuracy": 0.5}))
    return run


def test_collect_gives_peak_memory_resource_hours_and_the_idle_units_of_a_sweep(tmp_path):
    fake_run(tmp_path, "a", 1, held=4, wall=1800.0, peaks=[900.0], util=40.0)
    fake_run(tmp_path, "b", 4, held=4, wall=900.0, peaks=[500.0, 520.0, 510.0, 505.0])
    report = col.collect([tmp_path / "sweep"])
    runs = report.runs.set_index("run")
    assert runs.loc["a", ["peak_memory_mib", "gpu_util_mean", "resource", "resource_units", "idle_units"]].tolist() == [
        900.0,
        40.0,
        "gpu",
        4,
        3,
    ]
    assert runs.loc["a", "resource_hours"] == pytest.approx(2.0) and runs.loc["a", "idle_hours"] == pytest.approx(1.5)
    assert runs.loc["b", "peak_memory_mib"] == 520.0 and runs.loc["b", "idle_units"] == 0
    assert (runs.loc["b", "node_list"], bool(runs.loc["b", "exclusive"])) == ("n1", False)
    epochs = report.epochs.set_index("run")
    assert epochs.loc["a", "peak_memory_mib"] == 899.0 and epochs.loc["a", "resource_hours"] == pytest.approx(1.0)
    s = report.scaling.set_index("workers")
    assert s.loc[4, "peak_memory_mib"] == 520.0 and s.loc[1, "resource_hours"] == pytest.approx(2.0)
    assert (s.loc[1, "resource"], s.loc[1, "node_list"]) == ("gpu", "n1")
    assert cost.idle_sentences(report.runs) == ["sweep: the 1-GPU point held 3 idle GPUs (of 4): 1.5 GPU-hours"]
    md = report.markdown
    assert "peak memory (MiB)" in md.splitlines()[4] and "resource-h" in md.splitlines()[4]
    from hpc_dl.analysis.report import write_report

    write_report(report, tmp_path / "out")  # the page's summary and its Markdown twin state the idle units
    summary = (tmp_path / "out" / "report.md").read_text().split("## Summary")[1].split("\n## ")[0]
    assert "- sweep: the 1-GPU point held 3 idle GPUs (of 4): 1.5 GPU-hours." in summary.splitlines()
    assert (
        "sweep: the 1-GPU point held 3 idle GPUs (of 4): 1.5 GPU-hours"
        in (tmp_path / "out" / "report.html").read_text()
    )


def test_runs_without_the_new_records_leave_the_columns_empty(tmp_path):
    from tests.test_collect import make_run

    make_run(tmp_path, "old", 1, [10.0])
    row = col.collect([tmp_path]).runs.iloc[0]
    assert row[["peak_memory_mib", "resource", "resource_hours", "max_rss_mib"]].isna().all()
    assert cost.idle_sentences(col.collect([tmp_path]).runs) == []


# -- real runs

# glibc keeps freed blocks below its adaptive mmap threshold resident, so peak RSS would count what
# fsdp's all-gathers freed long ago; a fixed threshold returns large blocks when they are freed
MMAP_THRESHOLD = str(2**20)


def peaks_of(run: RunDir) -> list[float]:
    """Each rank's peak (its run_stop's, the highest mark), by rank."""
    out = []
    for path in run.event_files():
        stop = [json.loads(x) for x in path.read_text().splitlines() if '"run_stop"' in x][-1]
        assert stop["status"] == "success"
        out.append(stop["peak_memory(MiB)"])
    return out


@pytest.mark.slow
def test_fsdp_holds_less_per_rank_than_ddp_for_a_25m_parameter_model(runs_root, monkeypatch):
    """gpt-small (25 M parameters in 8 equal blocks): ddp holds parameters, gradients, its buckets and the
    momentum whole on each rank (4 P); fsdp at 2 workers holds half of three of them and one block
    unsharded (~1.75 P). One sample a step keeps activations small. Rank 0 also gathers fsdp's full state
    for the checkpoint (2 P more, briefly); rank 1 shows the sharding alone. resnet18, the smallest
    catalog model above 10 M, does not: its layer4, 75 % of its parameters, is one fsdp unit."""
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD)  # the workers inherit it
    peaks, params = {}, None
    for strategy in ("ddp", "fsdp"):
        spec = JobSpec(
            strategy=strategy,
            model="gpt-small",
            dataset="synthetic-text",
            gpus=2,
            train_samples=4,
            test_samples=2,
            batch_size=1,
            epochs=1,
        )
        run, _ = sub._prepare(spec, profiles.load("local"), runs_root, "memory", None)
        done = subprocess.run(["bash", str(run.script)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        peaks[strategy] = peaks_of(run)
        start = json.loads(run.rank_events(0).read_text().splitlines()[0])
        params = start["parameter_bytes"] / 2**20
    assert params > 90  # 25 M fp32 parameters
    assert max(peaks["fsdp"]) < min(peaks["ddp"]), peaks
    assert peaks["fsdp"][1] < peaks["ddp"][1] - params, (peaks, params)  # measured: 1.9 P less
    report = col.collect([runs_root])
    table = report.runs.set_index("strategy")["peak_memory_mib"]
    assert table["fsdp"] == max(peaks["fsdp"]) and table["fsdp"] < table["ddp"]
    from hpc_dl.analysis import summary  # and the report's summary says so, from these numbers

    said = [v.text for v in summary.summarize(report.scaling, report.breakdown, report.runs) if v.kind == "memory"]
    assert said == [
        f"fsdp uses {table['fsdp'] / table['ddp']:.2f}x ddp's peak memory per rank at 2 workers "
        f"({table['fsdp']:.0f} vs {table['ddp']:.0f} MiB)"
    ]


def test_a_device_that_cannot_say_leaves_the_peak_out(monkeypatch):
    def broken(_device):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", broken)
    assert memory.peak(torch.device("cuda", 0)) == {}  # the failure's run_stop still gets written
