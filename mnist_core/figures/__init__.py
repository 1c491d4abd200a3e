"""The figures wing: every Plotly figure and every server-rendered picture."""
