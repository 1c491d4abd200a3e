"""AppTest: the app shell and the Home page run and report the machine's state."""

from streamlit.testing.v1 import AppTest

from support import ROOT


def test_home_page_shows_status():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "MNIST Lab"
    assert any("MNIST found" in s.value for s in at.success)
    # the label carries the words so the value stays short enough to show whole
    assert any("test accuracy" in m.label and m.value == "99.56%" for m in at.metric)
    [precision] = [m for m in at.metric if m.label == "Training precision"]  # precision="auto" decided
    native = any(f in open("/proc/cpuinfo").read() for f in ("avx512_bf16", "amx_bf16"))
    assert precision.value == ("bf16" if native else "fp32")
    assert any("bf16 natively" in c.value or "no native bf16" in c.value for c in at.caption)


def test_home_page_explains_missing_data(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("MNIST_DATA_DIR" in w.value for w in at.warning)
