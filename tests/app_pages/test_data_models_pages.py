"""AppTest for the Data and Models pages."""

import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.learn.models import REGISTRY
from support import PAGES_DIR
from support.helpers import as_int, chart_numbers

PAGES = PAGES_DIR


def test_data_page_shows_splits_balance_and_reacts_to_the_fraction():
    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGES / "data.py"), default_timeout=90).run()
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert values == {"Train": "54,000", "Validation": "6,000", "Test": "10,000"}
    assert not at.dataframe  # the class balance is an HTML table, which a screen reader reads
    table = next(t.value for t in at.table if "test" in t.value.columns)
    assert table["test"].tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    balance, pixels = chart_numbers(at)  # every chart's numbers, one click away, as an HTML table
    assert balance["digit"].tolist() == [str(d) for d in range(10)]
    assert [as_int(n) for n in balance["test"]] == table["test"].tolist()
    assert sum(as_int(a) + as_int(b) for a, b in zip(balance["train"], balance["validation"])) == 60_000
    captions = [c.value for c in at.caption]
    assert any("54,000 in all" in c and "10,000 in all" in c and "for digit 1" in c for c in captions)
    assert list(pixels.columns) == ["pixel value", "pixels"] and len(pixels) <= 30
    assert pixels["pixel value"].iloc[[0, -1]].tolist() == ["0", "255"]  # sampled evenly, the last kept
    assert any(c.startswith(f"{len(pixels)} of 256 points: every") for c in captions)
    at.slider(key="data_val").set_value(0.2).run()
    assert {m.label: m.value for m in at.metric}["Validation"] == "12,000"
    assert sum(as_int(n) for n in chart_numbers(at)[0]["validation"]) == 12_000
    assert any("0.1307" in md.value and "0.3081" in md.value for md in at.markdown)


def test_models_page_lists_every_registry_model():
    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGES / "models.py"), default_timeout=90).run()
    assert not at.exception
    overview = at.dataframe[0].value
    assert overview["model"].tolist() == list(REGISTRY)
    assert int(overview.set_index("model").loc["cnn_basic", "parameters"]) == 421_642
    assert len(at.expander) == len(REGISTRY)
    assert any(m.value == "not trained yet" for m in at.metric)
