"""Step adapters: library models (e.g. Hugging Face Mamba, RWKV) -> models that take their
state, `forward(ids, *states) -> (logits, *new_states)`, ready for `rnnedge.export`."""
