"""torch.export of one time step -> float Graph, recurrent states explicit
(program.py drives; aten.py maps ATen ops, rnn.py holds the GRU/LSTM/RNN gate orders,
batching.py finds the batch axes)."""
