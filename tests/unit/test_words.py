from mnist_core.words import count, kept_epochs


def test_a_count_agrees_with_its_noun():
    assert count(1, "run") == "1 run"
    assert [count(n, "run") for n in (0, 2, 12)] == ["0 runs", "2 runs", "12 runs"]
    assert count(1, "selected active run") == "1 selected active run"
    assert count(3, "batch loss", "batch losses") == "3 batch losses"
    assert count(2.0, "CPU") == "2 CPUs" and count(1.0, "GPU") == "1 GPU" and count(0.5, "GPU") == "0.5 GPUs"


def test_what_an_ended_run_keeps_agrees_with_its_count():
    assert kept_epochs(1) == "1 finished epoch and its checkpoint are kept"
    assert kept_epochs(3) == "3 finished epochs and their checkpoints are kept"
    assert kept_epochs(0) == "No epoch had finished: there is no checkpoint to keep"
