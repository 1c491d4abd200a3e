"""Models: the zoo. Every registry architecture with its layers, size, cost and results."""

import pandas as pd
import streamlit as st

from mnist_core.figures.dataset import layer_diagram
from mnist_core.learn.models import REGISTRY, summary
from pages.ui.resources import job_manager
from pages.ui.shell import ensure_app_shell

ensure_app_shell()
st.title("Models")
st.caption("Every architecture in the registry: the same list the Train page and the command line use.")

best = job_manager().store.best_by_model()
overview = []
for key, spec in REGISTRY.items():
    s = summary(key)
    overview.append(
        dict(
            model=key,
            parameters=s.parameters,
            mflops=s.flops / 1e6,
            reference=spec.reference,
            best_test_accuracy=f"{best[key][0]:.2%}" if key in best else "not trained yet",
        )
    )
st.dataframe(
    pd.DataFrame(overview),
    hide_index=True,
    width="stretch",
    column_config={
        "parameters": st.column_config.NumberColumn("parameters", format="localized"),
        "mflops": st.column_config.NumberColumn("MFLOPs / image", format="%.2f"),
        "best_test_accuracy": st.column_config.TextColumn("best test accuracy (your runs)"),
    },
)

for key, spec in REGISTRY.items():
    s = summary(key)
    rows = list(s.layers)
    with st.expander(f"**{key}** · {s.parameters:,} parameters · {spec.reference}"):
        st.write(spec.description)
        m1, m2, m3 = st.columns(3)
        m1.metric("Parameters", f"{s.parameters:,}")
        m2.metric("Forward FLOPs / image", f"{s.flops / 1e6:.2f} M")
        reached = best.get(key)
        m3.metric("Best test accuracy so far", f"{reached[0]:.2%}" if reached else "not trained yet")
        st.graphviz_chart(layer_diagram(rows), width="stretch")
        table = pd.DataFrame(rows)
        table["output_shape"] = table["output_shape"].map(lambda s: " x ".join(map(str, s)))
        st.dataframe(table, hide_index=True, width="stretch")
        preset = ", ".join(f"{k}={v}" for k, v in spec.preset.items())
        st.caption(f"Reference settings (the Train page's preset): {preset}")
