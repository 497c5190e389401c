"""`rnnedge check`: the golden self-check (run.py), its data, metrics, reports and plot."""
