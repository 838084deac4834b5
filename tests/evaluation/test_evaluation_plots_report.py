from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

pytest.importorskip("mplhep")

from evaluation_toys import physical_toy

from hepvld.evaluation import plots
from hepvld.evaluation.calibration import coverage, rank_histogram, ranks
from hepvld.evaluation.posterior import brute_force_posterior
from hepvld.evaluation.report import write_report
from hepvld.evaluation.tables import Table, format_value, paper_table1


@pytest.fixture
def toy(rng):
    truth = physical_toy(rng, 120)
    draws = {"A": truth[:, None] + rng.normal(size=(120, 4, 55)), "B model": truth[:, None] + 3.0}
    draws["B model"] = draws["B model"] + rng.normal(size=(120, 4, 55))
    return truth, draws


def test_plots_render(toy, rng, tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    truth, draws = toy
    fig, (ax, _rax) = plots.plot_distribution(truth, draws, "t_had", "pT", bins=10)
    assert len(ax.patches) >= 2
    paths = plots.save_figure(fig, tmp_path / "dist")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(
        p.stat().st_size > 0 for p in paths
    )
    bf = brute_force_posterior(rng.normal(size=(120, 3)), truth, rng.normal(size=3))
    plots.plot_event_posterior(
        {"A": draws["A"][0]}, truth[0], [("t_had", "M"), ("nu", "pz")], brute_force=bf
    )
    cov = coverage(draws["A"], truth, (0.2, 0.68, 0.95), rng=rng)
    plots.plot_coverage({"A": cov})
    plots.plot_rank_histograms(rank_histogram(ranks(draws["A"], truth, rng), 4), [0, 1, 2])
    plots.plot_mass_shell(truth, draws)
    fig, _ = plots.plot_composite_masses(truth, draws)
    assert len(plots.figure_to_base64(fig)) > 100
    assert matplotlib.get_backend() == backend  # no global state touched


def test_table_formats():
    t = Table("T", ["a", "b"], [["x", (1.23456, 0.0123)], ["y", 2.0]], note="n")
    md = t.to_markdown()
    assert "1.235 ± 0.012" in md and md.startswith("### T")
    assert t.to_csv().splitlines()[0] == "a,b,b_err"
    assert t.to_dict()["rows"][0][1] == {"value": 1.23456, "error": 0.0123}
    assert format_value(float("nan")) == "nan"


def test_paper_table1():
    t = paper_table1()
    assert t["VLD"]["wasserstein"] == pytest.approx(108.76)
    assert t["CINN"]["kl256"] == pytest.approx(32.37)
    assert len(t) == 7


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: set[str] = set()
        self.images = 0
        self.void = {"meta", "img", "br", "hr", "link", "input"}

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.images += 1
            assert dict(attrs)["src"].startswith("data:image/png;base64,")
        if tag not in self.void:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def test_write_report_tiny(toy, rng, tmp_path):
    truth, draws = toy
    train = physical_toy(rng, 300)
    rep = write_report(
        tmp_path / "rep",
        truth,
        draws,
        weights=rng.uniform(0.5, 1.5, size=len(truth)),
        train_truth=train,
        train_features=rng.normal(size=(300, 4)),
        test_features=rng.normal(size=(120, 4)),
        n_boot=5,
        plot_features=(("t_had", "mass"),),
        plot_formats=("png",),
    )
    assert rep.html.exists()
    text = rep.html.read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.stack and {"html", "body", "table", "img"} <= checker.tags
    assert checker.images >= 5
    assert "floor" in text and ("calibrated" in text or "confident" in text)
    for key in (
        "table1",
        "per_event_summary",
        "coverage_summary",
        "particle_wasserstein",
        "type_ks",
        "consistency",
    ):
        assert (tmp_path / "rep" / "tables" / f"{key}.md").exists()
        assert (tmp_path / "rep" / "tables" / f"{key}.csv").exists()
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    rows = results["tables"]["table1"]["rows"]
    assert [r[0] for r in rows] == ["A", "B model", "truth floor"]
    assert rows[1][1]["value"] > rows[0][1]["value"]  # the shifted model is further away
    assert all(p.exists() for p in rep.files)
    assert len(rep.summary) == 6


def test_write_report_without_train(toy, tmp_path):
    truth, draws = toy
    rep = write_report(tmp_path, truth, {"A": draws["A"]}, n_boot=0, plots=False)
    assert "test truth marginal" in rep.results["meta"]
