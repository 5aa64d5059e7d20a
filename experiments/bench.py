"""
Benchmarks: prints the figures the issues ask for.

    python experiments/bench.py                 # everything
    python experiments/bench.py train bnsl      # only some sections (train, record, bnsl, zsl, zsl_null,
                                                #   zsl_processes, error_entropy, bpe, vocab)
    python experiments/bench.py --threads=1 zsl # torch on one CPU thread
    python experiments/bench.py --help

Each section is a plain function that prints its own lines. Times are wall-clock
medians over a few repeats, on whatever threads torch uses (--threads, or OMP_NUM_THREADS, to pin).
Bad input, Ctrl-C, a full disk and a closed pipe (`bench.py | head`) end it with one line
(support/cli.py).
"""
import os
import sys
import time

if __package__ in (None, ""):  # run as `python experiments/NAME.py`: import from the repository root,
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # as `python -m experiments.NAME` does
if __name__ == "__main__":  # Ctrl-C while the sections' imports load: one line, not a traceback
    from support.cli import quiet_ctrl_c_while_loading
    quiet_ctrl_c_while_loading("bench.py")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository: train.py, zsl.py


def median_time(fn, repeats=5, warmup=1):
    """Median wall-clock seconds of fn() over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def train_run_seconds(**flags):
    """Wall-clock seconds of one train.py run with these flags (in a temporary run directory)."""
    import tempfile
    import train
    with tempfile.TemporaryDirectory() as out_dir:
        config = train.TrainConfig(out_dir=out_dir, progress=False, **flags)
        start = time.perf_counter()
        train.train(config)
        return time.perf_counter() - start


def training_step(model, optimizer, x, y, per_token=False):
    """One step as train.py takes it: forward, backward, clip the gradient norm to 1, AdamW, zero the grads.
    per_token: call the model as train.py does (per-token losses, then their mean); else its plain mean."""
    import torch
    if per_token:
        _, losses = model(x, y, per_token=True)
        loss = losses.mean()
    else:
        _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def adamw(model):
    import torch
    return torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-5, weight_decay=0.1)


def plain_loop_seconds_per_step(n_layer, n_embd, steps=30):
    """A plain nanoGPT-style loop of the same size: batch, forward, backward, clip, AdamW step."""
    import numpy as np
    import torch
    import train
    from data import prepare
    from model import GPT, GPTConfig
    c = train.TrainConfig(n_layer=n_layer, n_embd=n_embd)
    tokens, _, _ = train.load_data(c, is_master=True)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=c.block_size, n_layer=n_layer, n_head=c.n_head, n_embd=n_embd))
    optimizer = adamw(model)

    def one_step():
        starts = np.random.randint(len(tokens) - c.block_size - 1, size=c.batch_size)
        training_step(model, optimizer, *prepare.windows(tokens, starts, c.block_size))

    return median_time(lambda: [one_step() for _ in range(steps)], repeats=3) / steps


def bench_train():
    """Training throughput of train.py against a plain loop, at the default size and at 4 x 256."""
    import train
    defaults = train.TrainConfig()
    tokens_per_step = defaults.batch_size * defaults.block_size
    for n_layer, n_embd, steps in ((defaults.n_layer, defaults.n_embd, 300), (4, 256, 40)):
        # train.py without records or checkpoints, minus its one-off setup (a 1-step run)
        flags = dict(n_layer=n_layer, n_embd=n_embd, record_per_octave=0, ckpt_per_octave=0)
        setup = train_run_seconds(max_iters=1, **flags)
        ours = (train_run_seconds(max_iters=steps + 1, **flags) - setup) / steps
        plain = plain_loop_seconds_per_step(n_layer, n_embd)
        print(f"{n_layer} x {n_embd:<4d} train.py {tokens_per_step / ours:9,.0f} tokens/s   "
              f"plain loop {tokens_per_step / plain:9,.0f} tokens/s   ratio {plain / ours:.2f}")


def recording_seconds(**flags):
    """(seconds inside the recording functions, seconds of the whole run) of one train.py run."""
    import collections
    import train
    spent = collections.Counter()

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            spent[name] += time.perf_counter() - start
            return result
        return wrapper

    originals = {name: getattr(train, name) for name in ("per_token_losses", "save_npz", "save_checkpoint")}
    for name, function in originals.items():
        setattr(train, name, timed(name, function))
    try:
        total = train_run_seconds(**flags)
    finally:
        for name, function in originals.items():
            setattr(train, name, function)
    return spent, total


def bench_record():
    """
    Cost of per-token recording and checkpoints, two ways:
      direct   the time spent inside the recording functions during one run: a default train.py run,
               and reproduce.py's setting (stdlib_bpe2048, probe 32x64, 2 048 steps) for its
               smallest size, 1x32, where a recorded forward is the largest share of a step
      A/B      default runs with and without records + checkpoints, alternated, fastest of two each
               (whole runs differ by a few percent from one to the next on a shared machine)
    """
    settings = [("default run", {}),
                ("reproduce.py 1x32 on stdlib_bpe2048, probe 32x64, 2048 steps",
                 dict(dataset="stdlib_bpe2048", n_probe=32, max_iters=2048, n_layer=1, n_head=1, n_embd=32,
                      learning_rate=6e-3))]
    for label, flags in settings:
        spent, total = recording_seconds(**flags)
        recording = sum(spent.values())
        print(f"direct, {label}: {recording:.2f} s of {total:.1f} s is recording "
              f"({100 * recording / (total - recording):.1f}% of training time: "
              + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in spent.items()) + ")")
    with_records, without = [], []
    for _ in range(2):
        without.append(train_run_seconds(record_per_octave=0, ckpt_per_octave=0))
        with_records.append(train_run_seconds())
    print(f"A/B, default run: {min(with_records):.1f} s with records + checkpoints, {min(without):.1f} s without "
          f"-> {100 * (min(with_records) / min(without) - 1):+.1f}%")


def bench_bnsl():
    """One 1-break BNSL fit of a ~500-point noisy synthetic curve, from no initial guess (<= 30 ms)."""
    import os
    import numpy as np
    import bnsl
    steps = np.unique(np.geomspace(10, 100_000, 560).round())
    # L(t) = b t^-c0 (1 + (t/d1)^(1/f1))^(-c1 f1), b=6, c0=0.12, c1=-0.09, d1=300, f1=0.3, 0.5 % noise
    losses = 6.0 * steps ** -0.12 * (1 + (steps / 300.0) ** (1 / 0.3)) ** (0.09 * 0.3)
    losses *= np.exp(0.005 * np.random.default_rng(0).standard_normal(len(steps)))
    seconds = median_time(lambda: bnsl.fit_bnsl(steps, losses, breaks=1), repeats=21)
    fit = bnsl.fit_bnsl(steps, losses, breaks=1)
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "all cores"
    print(f"bnsl: {seconds * 1e3:.1f} ms per fit of {len(steps)} points (target <= 30 ms; median of 21; "
          f"numpy BLAS threads: {threads}; fitted t_d={fit['t_d']:.0f} vs true 300)")


def bench_zsl():
    """
    Exact per-token gradient statistics (Σ_i g_ij and Σ_i |g_ij|) on a probe-sized batch
    (16 sequences × 64 tokens), three ways, same values:
      fast         zsl.per_token_grad_stats (per-sequence gradients from one backward per position,
                   causal prefixes, rank-1 layers after the last attention)
      naive/seq    zsl.naive_per_token_grad_stats: one forward per sequence, one backward per token
      naive/batch  the most literal loop: one forward of the whole batch, one backward per token
    The naive loops run on a subset of tokens; their cost per token does not depend on which.
    """
    import torch

    import zsl
    from model import GPT, GPTConfig

    print(f"torch threads: {torch.get_num_threads()}")
    sizes = [("1x64", dict(n_layer=1, n_embd=64)), ("2x64 (the default)", dict(n_layer=2, n_embd=64)),
             ("2x128", dict(n_layer=2, n_embd=128))]
    for label, size in sizes:
        torch.manual_seed(0)
        model = GPT(GPTConfig(block_size=64, n_head=4, **size)).eval()
        x, y = torch.randint(0, 256, (16, 64)), torch.randint(0, 256, (16, 64))

        fast_s = median_time(lambda: zsl.per_token_grad_stats(model, x, y), repeats=3)
        naive_seqs = 2
        naive_s = median_time(lambda: zsl.naive_per_token_grad_stats(model, x[:naive_seqs], y[:naive_seqs]),
                              repeats=1)
        batch_tokens = 8
        params = list(model.parameters())

        def naive_whole_batch():
            _, losses = model(x, y, per_token=True)
            for i in range(batch_tokens):
                for g in torch.autograd.grad(losses.view(-1)[i], params, retain_graph=True):
                    g.abs()
        batch_s = median_time(naive_whole_batch, repeats=1)

        fast_tps, naive_tps, batch_tps = x.numel() / fast_s, naive_seqs * 64 / naive_s, batch_tokens / batch_s
        # same values: fast against the reference loop on the same two sequences
        fast = zsl.per_token_grad_stats(model, x[:naive_seqs], y[:naive_seqs])
        ref = zsl.naive_per_token_grad_stats(model, x[:naive_seqs], y[:naive_seqs])
        worst = max(float((fast[k][n] - ref[k][n]).norm() / ref[k][n].norm())
                    for k in ("sum_grad", "sum_abs_grad") for n in ref[k])
        print(f"zsl {label:26s} {model.num_params():7d} non-emb params | fast {fast_tps:7.0f} tok/s | "
              f"naive/seq {naive_tps:6.0f} tok/s (x{fast_tps / naive_tps:.1f}) | "
              f"naive/batch {batch_tps:5.0f} tok/s (x{fast_tps / batch_tps:.1f}) | "
              f"max rel diff {worst:.1e} {'OK' if worst < 1e-5 else 'MISMATCH'}")


def bench_zsl_null():
    """
    The cost of the random-sign nulls on the default 2x64 model, 16 x 64 probe tokens: the fast
    per-token gradient statistics with K = 0 sign patterns (the CLT null alone, from Σ_i g_ij²) and
    with K = 8 and 32 (the Monte Carlo null), timed alternately, medians of 5 rounds.
    """
    import torch

    import token_grads
    from model import GPT, GPTConfig
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=64)).eval()
    x, y = torch.randint(0, 256, (16, 64)), torch.randint(0, 256, (16, 64))
    times = {K: [] for K in (0, 8, 32)}
    for _ in range(5):
        for K in times:
            signs = token_grads.sign_patterns(K, 16, 64)
            start = time.perf_counter()
            token_grads.per_token_grad_stats(model, x, y, signs=signs)
            times[K].append(time.perf_counter() - start)
    base = sorted(times[0])[2]
    for K, t in times.items():
        print(f"zsl null: K = {K:2d} sign patterns: {sorted(t)[2]:.2f} s per 1024 tokens "
              f"({sorted(t)[2] / base - 1:+.0%} against K = 0; median of 5, alternated)")


def bench_zsl_processes(probe_tokens=4096, rounds=3, figure="bench_zsl_processes.png"):
    """
    zsl.py across processes: one checkpoint of a short default-size run, probe_tokens tokens, with
    1 process x 1 thread, 2 processes x 1 thread (torchrun, gloo) and 1 process x 2 threads, run
    alternately. The time is the one zsl.py prints per checkpoint (start-up excluded); the figure
    shows every round and the medians.
    """
    import os
    import re
    import subprocess
    import tempfile

    import train
    setups = {"1 process x 1 thread": (1, 1), "2 processes x 1 thread": (2, 1), "1 process x 2 threads": (1, 2)}
    seconds = {name: [] for name in setups}
    with tempfile.TemporaryDirectory() as run_dir:
        train.train(train.TrainConfig(out_dir=run_dir, max_iters=64, progress=False))
        for _ in range(rounds):
            for name, (procs, threads) in setups.items():
                command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={procs}", os.path.join(ROOT, "zsl.py"), run_dir, "--steps", "64",
                           "--probe_tokens", str(probe_tokens), "--no_update", "--no_progress",
                           "--threads", str(threads)]
                result = subprocess.run(command, capture_output=True, text=True,
                                        env={**os.environ, "OMP_NUM_THREADS": str(threads)})
                found = re.search(r"step 64: .* in ([0-9.]+) s", result.stderr)
                if result.returncode or not found:
                    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                    raise RuntimeError(f"zsl.py under torchrun failed (exit {result.returncode}): {last[-300:]}")
                seconds[name].append(float(found.group(1)))
    median = {name: sorted(t)[len(t) // 2] for name, t in seconds.items()}
    one = median["1 process x 1 thread"]
    for name, t in median.items():
        print(f"zsl processes: {name:24s} {t:6.1f} s per checkpoint ({probe_tokens} tokens; "
              f"speed-up x{one / t:.2f}; rounds: {', '.join(f'{s:.1f}' for s in seconds[name])})")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from support.files import save_figure
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, (name, t) in enumerate(seconds.items()):
        ax.bar(k, median[name], color=f"C{k}", alpha=0.6)
        ax.plot([k] * len(t), t, "k.", ms=5)
        ax.annotate(f"x{one / median[name]:.2f}", (k, median[name]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(seconds)), list(seconds), fontsize=8)
    ax.set(yscale="log", ylabel="seconds per checkpoint")
    ax.set_title(f"zsl.py, {probe_tokens} probe tokens, 2x64 model (bars: medians, dots: rounds)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, figure, dpi=110)  # written whole, then renamed
    print(f"zsl processes: figure {figure}")


def bench_error_entropy():
    """
    error_entropy.evaluate: forward + CE = EE + SA - log C (float64, strict ranks) of 102 400
    validation tokens (1 600 windows of 64) through the default 2 x 64 model (<= 2 s on 2 cores).
    Wall time and CPU time (all threads), medians of 5: on a shared machine the wall time
    mostly measures the other processes, the CPU time what the work costs.
    """
    import numpy as np
    import torch
    from experiments import error_entropy
    import train
    from data import prepare
    from model import GPT, GPTConfig
    c = train.TrainConfig()
    _, val, meta = train.load_data(c, is_master=True)
    starts = np.linspace(0, len(val) - c.block_size - 1, 1600).astype(np.int64)
    x, y = prepare.windows(val, starts, c.block_size)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=meta["vocab_size"], block_size=c.block_size, n_layer=c.n_layer,
                          n_head=c.n_head, n_embd=c.n_embd)).eval()
    wall, cpu = [], []
    for _ in range(6):   # the first is a warm-up
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        error_entropy.evaluate(model, x, y)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    wall, cpu = sorted(wall[1:])[2], sorted(cpu[1:])[2]
    print(f"error_entropy: {y.numel():,} tokens of the default model in {wall:.2f} s wall, {cpu:.2f} s CPU "
          f"(torch threads: {torch.get_num_threads()}; target <= 2 s on 2 cores; median of 5)")


def bench_bpe():
    """Building data/stdlib_bpe2048: learning 1 792 merges on the standard-library training split and
    encoding it (target: <= 60 s on 2 cores). Needs data/stdlib (train.py or data/prepare.py builds it)."""
    import os
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    from data import bpe
    from data import prepare
    byte_dir = os.path.join(prepare.DATA_ROOT, "stdlib")
    if not os.path.isfile(os.path.join(byte_dir, "meta.json")):
        prepare.build_stdlib(byte_dir)
    train_bytes, _, _ = prepare.load_dataset(byte_dir)
    text = bytes(train_bytes).decode("utf-8", "surrogateescape")
    start = time.perf_counter()
    tokenizer = bpe.Tokenizer.train(text, 2048)
    learned = time.perf_counter()
    ids = tokenizer.encode(text)
    encoded = time.perf_counter()
    print(f"bpe: {len(train_bytes) / 1e6:.1f} MB -> {len(ids):,} tokens ({len(train_bytes) / len(ids):.2f} bytes/token); "
          f"learning 1 792 merges {learned - start:.1f} s + encoding {encoded - learned:.1f} s = "
          f"{encoded - start:.1f} s (target <= 60 s)")


class NanoGPTStyle:
    """
    A GPT written the way nanoGPT's model.py writes it (our own few lines, for a side-by-side): one
    c_attn Linear, SDPA causal attention, GELU MLP, pre-norm blocks, tied lm_head, and the loss as
    F.cross_entropy(logits.view(-1, V), targets.view(-1)) -- the mean, computed in one call.
    """

    @staticmethod
    def build(vocab_size, n_layer, n_embd, block_size=64):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Attention(nn.Module):
            def __init__(self):
                super().__init__()
                self.c_attn, self.c_proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)

            def forward(self, x):
                B, T, C = x.shape
                q, k, v = (t.view(B, T, -1, 32).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(n_embd), Attention(), nn.LayerNorm(n_embd)
                self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

            def forward(self, x):
                x = x + self.attn(self.ln_1(x))
                return x + self.mlp(self.ln_2(x))

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
                self.h = nn.ModuleList([Block() for _ in range(n_layer)])
                self.ln_f, self.lm_head = nn.LayerNorm(n_embd), nn.Linear(n_embd, vocab_size, bias=False)
                self.wte.weight = self.lm_head.weight
                for p in self.parameters():
                    if p.dim() == 2:
                        nn.init.normal_(p, std=0.02)

            def forward(self, idx, targets):
                x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
                for block in self.h:
                    x = block(x)
                logits = self.lm_head(self.ln_f(x))
                return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

        return GPT()


def ab_step_seconds(model_a, model_b, vocab_size, rounds=8, steps=10, batch_size=32, block_size=64):
    """
    Median seconds per training step of model_a (ours, called per-token as train.py does) and model_b
    (nanoGPT-style, its plain mean), on the same random tokens: both warmed up first (the first steps
    pay for memory the allocator has not handed out yet), then `rounds` rounds of `steps` steps
    each, in the order A B B A A B ..., so that both see the same drift of a shared machine.
    """
    import numpy as np
    import torch
    torch.manual_seed(0)
    x, y = torch.randint(vocab_size, (batch_size, block_size)), torch.randint(vocab_size, (batch_size, block_size))
    runners = {"a": (model_a, adamw(model_a), True), "b": (model_b, adamw(model_b), False)}
    times = {"a": [], "b": []}

    def run(name, n):
        model, optimizer, per_token = runners[name]
        start = time.perf_counter()
        for _ in range(n):
            training_step(model, optimizer, x, y, per_token)
        return (time.perf_counter() - start) / n

    for name in runners:
        run(name, 2 * steps)
    for k in range(rounds):
        for name in ("ab", "ba")[k % 2]:
            times[name].append(run(name, steps))
    return float(np.median(times["a"])), float(np.median(times["b"]))


def head_seconds(vocab_size, n_embd, steps=20, tokens=32 * 64):
    """Seconds per step of the output head and the cross-entropy alone: logits = h Wᵀ, loss, backward."""
    import torch
    import torch.nn.functional as F
    h = torch.randn(tokens, n_embd, requires_grad=True)
    W = (0.02 * torch.randn(vocab_size, n_embd)).requires_grad_()
    y = torch.randint(vocab_size, (tokens,))

    def one_step():
        F.cross_entropy(h @ W.t(), y, reduction="none").mean().backward()
        h.grad = W.grad = None

    return median_time(lambda: [one_step() for _ in range(steps)], repeats=3) / steps


def profile_shares(model, vocab_size, steps=10, batch_size=32, block_size=64, top=6):
    """torch.profiler over `steps` training steps: the operations that take the most time, as shares."""
    import torch
    from torch.profiler import profile
    x, y = torch.randint(vocab_size, (batch_size, block_size)), torch.randint(vocab_size, (batch_size, block_size))
    optimizer = adamw(model)
    for _ in range(steps):  # warm up
        training_step(model, optimizer, x, y, per_token=True)
    with profile() as prof:
        for _ in range(steps):
            training_step(model, optimizer, x, y, per_token=True)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return [(e.key, e.self_cpu_time_total / total) for e in events[:top]]


def bench_vocab():
    """
    Time per training step at vocab 256 (bytes) and 2048 (BPE), ours against a nanoGPT-style model of
    the same size, alternated; where a step of ours goes: the output head + cross-entropy (forward
    and backward, measured alone) against everything else, and the profiler's largest operations.
    """
    import torch
    from model import GPT, GPTConfig
    print(f"torch threads: {torch.get_num_threads()} (a shared machine makes these noisy: medians, alternated)")
    for n_layer, n_embd in ((1, 32), (2, 64), (3, 96)):
        for vocab_size in (256, 2048):
            torch.manual_seed(0)
            ours_model = GPT(GPTConfig(vocab_size=vocab_size, n_layer=n_layer, n_head=max(1, n_embd // 32),
                                       n_embd=n_embd))
            nano_model = NanoGPTStyle.build(vocab_size, n_layer, n_embd)
            ours_s, nano_s = ab_step_seconds(ours_model, nano_model, vocab_size)
            head = head_seconds(vocab_size, n_embd)
            print(f"{n_layer}x{n_embd:<3d} vocab {vocab_size:4d}: ours {1e3 * ours_s:6.1f} ms/step, nanoGPT-style "
                  f"{1e3 * nano_s:6.1f} ms/step (ratio {nano_s / ours_s:.2f}); head + cross-entropy "
                  f"{1e3 * head:5.1f} ms ({100 * head / ours_s:.0f}%), the rest {1e3 * (ours_s - head):5.1f} ms")
    torch.manual_seed(0)
    shares = profile_shares(GPT(GPTConfig(vocab_size=2048, n_layer=1, n_head=1, n_embd=32)), 2048)
    print("where a 1x32 step at vocab 2048 goes (torch.profiler, self CPU time): "
          + ", ".join(f"{name} {100 * share:.0f}%" for name, share in shares))


SECTIONS = {"train": bench_train, "record": bench_record, "bnsl": bench_bnsl, "zsl": bench_zsl,
            "zsl_null": bench_zsl_null, "zsl_processes": bench_zsl_processes, "error_entropy": bench_error_entropy,
            "bpe": bench_bpe, "vocab": bench_vocab}

def parse_args(argv):
    from support.checks import threads_flag
    from support.cli import OneLineParser, UsageError
    parser = OneLineParser(prog="bench.py", command="experiments/bench.py",
                           allow_abbrev=False, description=__doc__.strip().split("\n")[1],
                           epilog="sections: " + ", ".join(f"{name} ({(f.__doc__ or '').strip().split(chr(10))[0]})"
                                                            for name, f in SECTIONS.items()))
    parser.add_argument("sections", nargs="*", metavar="SECTION", help="the sections to run (default: all)")
    parser.add_argument("--threads", type=threads_flag, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    return args


def run_sections(argv):
    args = parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    for name in args.sections or list(SECTIONS):
        print(f"== {name}", flush=True)
        SECTIONS[name]()


def main(argv=None):
    """The command line; returns the exit status (support/cli.py)."""
    from support.cli import guarded
    return guarded("bench.py", run_sections, sys.argv[1:] if argv is None else argv,
                   os_hint="free space or fix the path (the benchmarks write into temporary directories)")


if __name__ == "__main__":
    sys.exit(main())
