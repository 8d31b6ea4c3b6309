"""The accuracy/cost frontier of `ghostnet bench report` (published top-1 against int8 instructions on one emulated
core, every family member and the MobileNets), and the zoo's RepGhostNets it is drawn with."""
import pytest

from android_bench import report, zoo
from android_bench.arm import estimate


def row(model, instructions, top1, precision="int8", threads=1):
    return {"model": model, "precision": precision, "threads": threads, "instructions": instructions,
            "instructions_m": instructions / 1e6, "top1": top1}


def test_frontier_keeps_the_models_nothing_cheaper_beats():
    rows = [row("a", 10e6, 70.0), row("b", 12e6, 69.0), row("c", 15e6, 75.0), row("fast_float", 5e6, 80.0, "float32"),
            row("unpublished", 8e6, None), row("tie", 15e6, 74.0), row("c_2threads", 9e6, 75.0, threads=2)]
    points = report.frontier(rows, "instructions_m")
    assert [(p["model"], p["frontier"]) for p in points] == [("a", True), ("b", False), ("c", True), ("tie", False)]


def test_an_equally_accurate_dearer_model_is_not_on_the_frontier():
    points = report.frontier([row("dear", 20e6, 70.0), row("cheap", 10e6, 70.0)], "instructions_m")
    assert [(p["model"], p["frontier"]) for p in points] == [("cheap", True), ("dear", False)]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The committed ARM results (docs/results/arm), reported as `bench report` does."""
    out = tmp_path_factory.mktemp("report")
    catalog = report.Catalog.of(zoo.ZOO.values(), zoo.DEFAULT_BASELINE)
    return out, report.write_report(estimate.COUNTS_JSONL, out, catalog)


def test_report_tabulates_and_draws_the_frontier_of_every_family(written):
    out, text = written
    table = text.split("## Frontier")[1].split("### emulated cortex-a76")[1].split("###")[0]
    models = {line.split(" | ")[0].lstrip("| ") for line in table.splitlines() if line.startswith("| ") and
              not line.startswith("| model")}
    assert {"ghostnet_050", "ghostnet_100", "ghostnet_130", "ghostnetv2_100", "ghostnetv3_100", "repghostnet_050",
            "repghostnet_100", "repghostnet_130", "mobilenet_v3_large_075"} <= models
    assert "| yes |" in table
    for core in ("cortex_a76", "cortex_a53"):
        assert (out / f"frontier_{core}.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name, width, top1", [("repghostnet_050", 0.5, 66.95), ("repghostnet_100", 1.0, 74.22),
                                               ("repghostnet_130", 1.3, 76.37)])
def test_zoo_repghostnets_are_the_folded_form_with_their_published_top1(name, width, top1):
    entry = zoo.ZOO[name]
    assert (entry.width, entry.top1, entry.label, entry.default) == (width, top1, f"RepGhostNet {width:.1f}x", False)
    model = entry.build((64, 64))
    names = [layer.name for layer in model.layers]
    assert model.name == name and not any("fusion_bn" in n for n in names)
    assert "blocks.0.0.ghost1.cheap_operation" in names
