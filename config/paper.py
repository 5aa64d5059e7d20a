"""The reference paper's optimisation recipe (docs/science.md §4) at a size one GPU trains in an
hour: AdamW 0.9/0.95, eps 1e-5, weight decay 0.1, clip 1.0, warm-up over 2000 steps from 10%, then
constant. The paper's batch was 512 x 1024 tokens; use grad_accum and torchrun to approach it."""
n_layer = 6
n_head = 8
n_embd = 512
block_size = 256
batch_size = 64
max_iters = 20000
learning_rate = 1.26e-3
warmup_iters = 2000
warmup_start = 0.1
lr_schedule = "constant"
