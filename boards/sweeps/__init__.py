"""The repo's benchmark sweeps (`make bench-step`, `make bench-int8`)."""
