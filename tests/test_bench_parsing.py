"""parse_benchmark_output on every output variant of benchmark_model (shared/reference/benchmark_model.md).

Expected numbers are copied by hand from the sample text.
"""
import pytest

from android_bench.parsing import parse_benchmark_output

CURRENT = """\
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 170 out of 170 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 5.6766
INFO: Initialized session in 31.5ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=64 first=9120 curr=7433 min=7301 max=9120 avg=7512.3 std=210 p5=7320 median=7455 p95=7901
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=134 first=7466 curr=7402 min=7288 max=8012 avg=7431.8 std=96 p5=7311 median=7410 p95=7640
INFO: Inference timings in us: Init: 31512, First inference: 9120, Warmup (avg): 7512.3, Inference (avg): 7431.8
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=9.12 overall=14.87
INFO: Overall peak memory footprint (MB) via periodic monitoring: 17.02
"""

SCIENTIFIC = """\
INFO: The input model file size (MB): 21.4
INFO: Initialized session in 1.2e+03ms.
INFO: count=2 first=1.31e+06 curr=1.25e+06 min=1.25e+06 max=1.31e+06 avg=1.28e+06 std=30000 p5=1.25e+06 median=1.31e+06 p95=1.31e+06
INFO: count=10 first=1.24027e+06 curr=1.2301e+06 min=1.21e+06 max=1.26e+06 avg=1.23456e+06 std=12345.6 p5=1.21e+06 median=1.235e+06 p95=1.26e+06
INFO: Inference timings in us: Init: 1.20003e+06, First inference: 1.31e+06, Warmup (avg): 1.28e+06, Inference (avg): 1.23456e+06
"""

OLD = """\
STARTING!
Num runs: [50]
Graph: [/data/local/tmp/m.tflite]
Loaded model /data/local/tmp/m.tflite
The input model file size (MB): 5.6766
Initialized session in 45.2ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=22 first=31012 curr=22650 min=22410 max=31012 avg=23100 std=1800
Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=22600 curr=22480 min=22301 max=23990 avg=22688.4 std=312
Inference timings in us: Init: 45213, First inference: 31012, Warmup (avg): 23100, Inference (avg): 22688.4
Peak memory footprint (MB): init=3.25 overall=12.5
"""

LOGCAT = """\
11-27 21:00:00.101  4567  4567 I tflite  : Initialized session in 12.5ms.
11-27 21:00:00.102  4567  4567 I tflite  : Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
11-27 21:00:00.603  4567  4567 I tflite  : count=40 first=15000 curr=12100 min=11900 max=15000 avg=12250 std=400 p5=11950 median=12150 p95=12900
11-27 21:00:01.605  4567  4567 I tflite  : count=80 first=12050 curr=12010 min=11800 max=13000 avg=12080.5 std=150 p5=11850 median=12040 p95=12500
I/tflite  ( 4567): Memory footprint delta from the start of the tool (MB): init=2.5 overall=6.75
I/tflite  ( 4567): Overall peak memory footprint (MB) via periodic monitoring: 8.5
"""

OP_PROFILE = """\
INFO: count=5 first=4000 curr=3500 min=3400 max=4000 avg=3600 std=200 p5=3400 median=3500 p95=4000
INFO: count=50 first=3510 curr=3490 min=3380 max=3720 avg=3495.5 std=60 p5=3400 median=3490 p95=3650
INFO: Inference timings in us: Init: 20500, First inference: 4000, Warmup (avg): 3600, Inference (avg): 3495.5
Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
\t             [node type]\t          [first]\t  [avg ms]\t      [%]\t    [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t ModifyGraphWithDelegate\t           11.203\t    11.203\t 95.432%\t 95.432%\t  2432.000\t        1\tModifyGraphWithDelegate/0
\t         AllocateTensors\t            0.520\t     0.268\t  4.568%\t100.000%\t     0.000\t        2\tAllocateTensors/0

Timings (microseconds): count=1 curr=11739
Memory (bytes): count=0
2 nodes observed

Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t          [first]\t  [avg ms]\t      [%]\t    [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            1.100\t     1.000\t 40.000%\t 40.000%\t     0.000\t        1\t[conv1]:0
\t       DEPTHWISE_CONV_2D\t            0.520\t     0.500\t 20.000%\t 60.000%\t     0.000\t        1\t[dw1]:1
\t                 CONV_2D\t            0.760\t     0.750\t 30.000%\t 90.000%\t     0.000\t        1\t[conv2]:2
\t         FULLY_CONNECTED\t            0.260\t     0.250\t 10.000%\t100.000%\t     0.000\t        1\t[fc]:3

============================== Top by Computation Time ==============================
\t             [node type]\t          [first]\t  [avg ms]\t      [%]\t    [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            1.100\t     1.000\t 40.000%\t 40.000%\t     0.000\t        1\t[conv1]:0
\t                 CONV_2D\t            0.760\t     0.750\t 30.000%\t 70.000%\t     0.000\t        1\t[conv2]:2

============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t                 CONV_2D\t        2\t     1.750\t    70.000%\t    70.000%\t     0.000\t        2
\t       DEPTHWISE_CONV_2D\t        1\t     0.500\t    20.000%\t    90.000%\t     0.000\t        1
\t         FULLY_CONNECTED\t        1\t     0.250\t    10.000%\t   100.000%\t     0.000\t        1

Timings (microseconds): count=50 first=2630 curr=2480 min=2400 max=2700 avg=2500 std=50
Memory (bytes): count=0
4 nodes observed
"""


def test_current_format_from_the_reference():
    result = parse_benchmark_output(CURRENT)
    assert result["init_us"] == 31512
    assert result["first_inference_us"] == 9120
    assert result["warmup_mean_us"] == 7512.3 and result["inference_mean_us"] == 7431.8
    assert result["model_size_mb"] == 5.6766
    assert result["warmup"] == {"count": 64, "first_us": 9120, "curr_us": 7433, "min_us": 7301, "max_us": 9120,
                                "mean_us": 7512.3, "std_us": 210, "p5_us": 7320, "median_us": 7455, "p95_us": 7901}
    assert result["measured"] == {"count": 134, "first_us": 7466, "curr_us": 7402, "min_us": 7288, "max_us": 8012,
                                  "mean_us": 7431.8, "std_us": 96, "p5_us": 7311, "median_us": 7410, "p95_us": 7640}
    assert result["memory"] == {"init_delta_mb": 9.12, "overall_delta_mb": 14.87, "peak_mb": 17.02}
    assert result["op_profile"] is None


def test_scientific_notation():
    result = parse_benchmark_output(SCIENTIFIC)
    assert result["init_us"] == 1_200_030
    assert result["first_inference_us"] == 1_310_000
    assert result["measured"]["first_us"] == 1_240_270
    assert result["measured"]["mean_us"] == 1_234_560
    assert result["measured"]["median_us"] == 1_235_000
    assert result["measured"]["std_us"] == 12345.6
    assert result["warmup"]["count"] == 2 and result["warmup"]["mean_us"] == 1_280_000
    assert result["model_size_mb"] == 21.4


def test_old_format_without_prefix_and_percentiles():
    result = parse_benchmark_output(OLD)
    measured = result["measured"]
    assert measured["count"] == 50 and measured["mean_us"] == 22688.4 and measured["min_us"] == 22301
    assert measured["p5_us"] is None and measured["median_us"] is None and measured["p95_us"] is None
    assert result["warmup"]["count"] == 22 and result["warmup"]["std_us"] == 1800
    assert result["init_us"] == 45213 and result["first_inference_us"] == 31012
    assert result["memory"] == {"init_delta_mb": 3.25, "overall_delta_mb": 12.5, "peak_mb": None}


def test_logcat_prefixes():
    result = parse_benchmark_output(LOGCAT)
    assert result["init_us"] == 12500  # from "Initialized session in 12.5ms": no "Inference timings" line here
    assert result["first_inference_us"] == 15000  # the warm-up's first run
    assert result["warmup"]["count"] == 40
    assert result["measured"] == {"count": 80, "first_us": 12050, "curr_us": 12010, "min_us": 11800, "max_us": 13000,
                                  "mean_us": 12080.5, "std_us": 150, "p5_us": 11850, "median_us": 12040,
                                  "p95_us": 12500}
    assert result["memory"] == {"init_delta_mb": 2.5, "overall_delta_mb": 6.75, "peak_mb": 8.5}


def test_op_profile_tables_become_a_per_type_summary():
    result = parse_benchmark_output(OP_PROFILE)
    # The profiler's own "Timings (microseconds): count=..." lines are not the benchmark's statistics.
    assert result["measured"]["count"] == 50 and result["measured"]["mean_us"] == 3495.5
    assert result["warmup"]["count"] == 5
    # Only the regular runs' Run Order table: no initialization rows, no double count from "Top by".
    assert result["op_profile"] == [
        {"node_type": "CONV_2D", "nodes": 2, "avg_ms": 1.75, "percent": 70.0, "times_called": 2},
        {"node_type": "DEPTHWISE_CONV_2D", "nodes": 1, "avg_ms": 0.5, "percent": 20.0, "times_called": 1},
        {"node_type": "FULLY_CONNECTED", "nodes": 1, "avg_ms": 0.25, "percent": 10.0, "times_called": 1},
    ]


def test_a_run_without_timings_is_an_error_showing_the_tools_last_lines():
    failed = ("INFO: STARTING!\nINFO: Graph: [/data/local/tmp/m.tflite]\n"
              "ERROR: Failed to apply GPU delegate.\nERROR: Benchmarking failed.\n")
    with pytest.raises(ValueError, match="no timings") as info:
        parse_benchmark_output(failed)
    assert "ERROR: Failed to apply GPU delegate." in str(info.value)
    assert "ERROR: Benchmarking failed." in str(info.value)
