"""The default run, written out: a 2-layer, 64-wide byte-level GPT on the standard library.
The loss curve bends near the end of warm-up (~step 100), a decade inside the 3000 logged steps."""
n_layer = 2
n_head = 4
n_embd = 64
block_size = 64
batch_size = 32
max_iters = 3000
learning_rate = 3e-3
warmup_iters = 100
warmup_start = 0.1
