"""What runs on a board (no torch): `rnnedge bench`, latency statistics, machine info."""
