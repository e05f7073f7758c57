#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Train rwkvd's embedded default model: a small byte-level RWKV-7 (x070) on the KJV Bible.

This is an independent, pure-PyTorch implementation of the x070 architecture, written from the
published math (token shift, LoRAs for w/a/v/g, the generalised delta rule state update, group
norm, r_k bonus, relu^2 channel mix). It exports a state dict with the official key names and
shapes, so any x070 loader (rwkvd's .pth reader included) can read the result.

It is deliberately CPU-friendly: one thread, run under `nice -n 10`, a wall-clock budget, periodic
checkpoints (so a budget cut still leaves a usable model) and a resumable training state.
It is NOT run by CI or by the build; see models/README.md for the exact command line used.

Sub-commands:
  train   (default) train and export OUT_DIR/model.pth
  logits  print the final logits for --tokens from a .pth (GPT mode), one per line (%.9g)
  bpb     bits per byte of a text file under a .pth (stateful, whole file)
  sample  generate text from a .pth
"""

import argparse
import collections
import math
import os
import random
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

LN2 = math.log(2.0)

# ------------------------------------------------------------------------------------------------
# Corpus


def kjv_text():
    """The KJV as plain text: a "Book N" line per chapter, then one verse per line.

    Debian's bible-kjv-text ships the text compressed in its own format (/usr/lib/bible.data);
    the bible(1) reader from bible-kjv decodes it. COLUMNS is set huge so verses are not wrapped.
    """
    env = dict(os.environ, COLUMNS="100000")
    raw = subprocess.run(["bible", "gen1:1-rev22:21"], check=True, capture_output=True,
                         env=env).stdout.decode("ascii")
    chapters = []
    cur = None
    for line in raw.splitlines():
        s = line.strip()
        if not s:
            continue
        head, _, rest = s.partition(" ")
        if head.isdigit() and cur is not None:
            cur.append(rest.strip())         # a verse: drop its number
        else:
            cur = [s]                        # "Genesis 1", "1 Kings 3", ...
            chapters.append(cur)
    return ["\n".join(c) + "\n\n" for c in chapters]


def split_corpus(chapters, every):
    """Hold out every `every`-th chapter: the held-out text is spread over the whole book."""
    train = "".join(c for i, c in enumerate(chapters) if i % every != every - 1)
    valid = "".join(c for i, c in enumerate(chapters) if i % every == every - 1)
    return train, valid


# ------------------------------------------------------------------------------------------------
# The WKV-7 recurrence with a hand-written backward pass.
#
# S_t = S_{t-1} diag(w_t) + (S_{t-1} z_t) b_t^T + v_t k_t^T ,  y_t = S_t r_t
# (S[i][j]: i indexes values, j keys; z = -kk, b = kk*a.)  Autograd over a per-step Python loop
# would keep ~4 state-sized temporaries per step; this keeps one (the state itself), which is what
# makes CPU training at head size 64 affordable.


class WKV7(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, w, k, v, z, b):
        B, T, H, N = r.shape
        states = r.new_zeros(T + 1, B, H, N, N)
        y = r.new_empty(B, T, H, N)
        S = states[0]
        for t in range(T):
            u = S @ z[:, t, :, :, None]                          # (B,H,N,1)
            S = (S * w[:, t, :, None, :] + u * b[:, t, :, None, :]
                 + v[:, t, :, :, None] * k[:, t, :, None, :])
            states[t + 1] = S
            y[:, t] = (S @ r[:, t, :, :, None])[..., 0]
        ctx.save_for_backward(r, w, k, v, z, b, states)
        return y

    @staticmethod
    def backward(ctx, dy):
        r, w, k, v, z, b, states = ctx.saved_tensors
        B, T, H, N = r.shape
        dr, dw, dk, dv, dz, db = (torch.empty_like(x) for x in (r, w, k, v, z, b))
        dS = r.new_zeros(B, H, N, N)
        dy = dy.contiguous()
        for t in range(T - 1, -1, -1):
            S, Sp = states[t + 1], states[t]
            dyt = dy[:, t]
            dS = dS + dyt[..., :, None] * r[:, t, :, None, :]
            dr[:, t] = (dyt[..., None, :] @ S)[..., 0, :]
            dv[:, t] = (dS @ k[:, t, :, :, None])[..., 0]
            dk[:, t] = (v[:, t, :, None, :] @ dS)[..., 0, :]
            u = Sp @ z[:, t, :, :, None]                         # (B,H,N,1)
            du = dS @ b[:, t, :, :, None]                        # (B,H,N,1)
            db[:, t] = (u.transpose(-1, -2) @ dS)[..., 0, :]
            dw[:, t] = (dS * Sp).sum(-2)
            dz[:, t] = (du.transpose(-1, -2) @ Sp)[..., 0, :]
            dS = dS * w[:, t, :, None, :] + du * z[:, t, :, None, :]
        return dr, dw, dk, dv, dz, db


def wkv7_reference(r, w, k, v, z, b):
    """Plain autograd version, used only to test WKV7.backward."""
    B, T, H, N = r.shape
    S = r.new_zeros(B, H, N, N)
    ys = []
    for t in range(T):
        S = (S * w[:, t, :, None, :] + (S @ z[:, t, :, :, None]) * b[:, t, :, None, :]
             + v[:, t, :, :, None] * k[:, t, :, None, :])
        ys.append((S @ r[:, t, :, :, None])[..., 0])
    return torch.stack(ys, 1)


# ------------------------------------------------------------------------------------------------
# The model. Parameter names and shapes are the official x070 ones.


def lora_dim(C, factor):
    return max(32, int(round(factor * (C ** 0.5) / 32) * 32))


def time_shift(x):
    """x_{t-1} (zero before the first token), for x of shape (B,T,C)."""
    return F.pad(x, (0, 0, 1, -1))


class TimeMix(nn.Module):
    def __init__(self, C, N, layer_id, n_layer):
        super().__init__()
        self.layer_id, self.C, self.N, self.H = layer_id, C, N, C // N
        H = self.H
        r01 = layer_id / max(n_layer - 1, 1)
        r10 = 1.0 - layer_id / n_layer
        ddd = torch.arange(C, dtype=torch.float32).reshape(1, 1, C) / C
        n = torch.arange(C, dtype=torch.float32)
        linear = n / (C - 1) - 0.5
        zigzag = ((n % N) - (N - 1) / 2) / ((N - 1) / 2)
        zigzag = zigzag * zigzag.abs()
        www = -6 + 6 * (n / (C - 1)) ** (1 + r01 ** 0.3)

        self.x_r = nn.Parameter(1.0 - ddd ** (0.2 * r10))
        self.x_w = nn.Parameter(1.0 - ddd ** (0.9 * r10))
        self.x_k = nn.Parameter(1.0 - ddd ** (0.7 * r10))
        self.x_v = nn.Parameter(1.0 - ddd ** (0.7 * r10))
        self.x_a = nn.Parameter(1.0 - ddd ** (0.9 * r10))
        self.x_g = nn.Parameter(1.0 - ddd ** (0.2 * r10))

        Dw, Da, Dv, Dg = lora_dim(C, 2.5), lora_dim(C, 2.5), lora_dim(C, 1.7), lora_dim(C, 5)
        self.w0 = nn.Parameter((www + 0.5 + zigzag * 2.5).reshape(1, 1, C))
        self.w1 = nn.Parameter(torch.zeros(C, Dw))
        self.w2 = nn.Parameter(self.ortho(torch.zeros(Dw, C), 0.1))
        self.a0 = nn.Parameter((-0.19 + zigzag * 0.3 + linear * 0.4).reshape(1, 1, C))
        self.a1 = nn.Parameter(torch.zeros(C, Da))
        self.a2 = nn.Parameter(self.ortho(torch.zeros(Da, C), 0.1))
        if layer_id > 0:   # layer 0's v is the "first v" every later layer mixes in
            self.v0 = nn.Parameter((0.73 - linear * 0.4).reshape(1, 1, C))
            self.v1 = nn.Parameter(torch.zeros(C, Dv))
            self.v2 = nn.Parameter(self.ortho(torch.zeros(Dv, C), 0.1))
        self.g1 = nn.Parameter(torch.zeros(C, Dg))
        self.g2 = nn.Parameter(self.ortho(torch.zeros(Dg, C), 0.1))
        self.k_k = nn.Parameter((0.71 - linear * 0.1).reshape(1, 1, C))
        self.k_a = nn.Parameter(torch.full((1, 1, C), 1.02))
        self.r_k = nn.Parameter(torch.full((H, N), -0.04))

        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=64e-5)
        with torch.no_grad():
            s = C ** -0.5
            self.receptance.weight.uniform_(-0.5 * s, 0.5 * s)
            self.key.weight.uniform_(-0.05 * s, 0.05 * s)
            self.value.weight.uniform_(-0.5 * s, 0.5 * s)
            self.output.weight.zero_()

    @staticmethod
    def ortho(x, scale):
        gain = math.sqrt(x.shape[0] / x.shape[1]) if x.shape[0] > x.shape[1] else 1.0
        nn.init.orthogonal_(x, gain=gain * scale)
        return x

    def forward(self, x, v_first):
        B, T, C = x.shape
        H, N = self.H, self.N
        xx = time_shift(x) - x
        xr, xw, xk = x + xx * self.x_r, x + xx * self.x_w, x + xx * self.x_k
        xv, xa, xg = x + xx * self.x_v, x + xx * self.x_a, x + xx * self.x_g

        r = self.receptance(xr)
        # decay = exp(-e^-0.5 * sigmoid(.)), written the way inference code computes it
        w = torch.exp(-0.606531 * torch.sigmoid(self.w0 + torch.tanh(xw @ self.w1) @ self.w2))
        k = self.key(xk)
        v = self.value(xv)
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2

        kk = F.normalize((k * self.k_k).view(B, T, H, N), dim=-1, p=2.0).view(B, T, C)
        k = k * (1 + (a - 1) * self.k_a)

        shp = (B, T, H, N)
        y = WKV7.apply(*(t.reshape(shp).contiguous() for t in (r, w, k, v, -kk, kk * a)))
        y = self.ln_x(y.reshape(B * T, C)).view(B, T, C)
        y = y + ((r.view(shp) * k.view(shp) * self.r_k).sum(-1, keepdim=True)
                 * v.view(shp)).view(B, T, C)
        return self.output(y * g), v_first


class ChannelMix(nn.Module):
    def __init__(self, C, layer_id, n_layer):
        super().__init__()
        r10 = 1.0 - layer_id / n_layer
        ddd = torch.arange(C, dtype=torch.float32).reshape(1, 1, C) / C
        self.x_k = nn.Parameter(1.0 - ddd ** (r10 ** 4))
        self.key = nn.Linear(C, 4 * C, bias=False)
        self.value = nn.Linear(4 * C, C, bias=False)
        with torch.no_grad():
            nn.init.orthogonal_(self.key.weight, gain=2.0)
            self.value.weight.zero_()

    def forward(self, x):
        xk = x + (time_shift(x) - x) * self.x_k
        return self.value(torch.relu(self.key(xk)) ** 2)


class Block(nn.Module):
    def __init__(self, C, N, layer_id, n_layer):
        super().__init__()
        self.layer_id = layer_id
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = TimeMix(C, N, layer_id, n_layer)
        self.ffn = ChannelMix(C, layer_id, n_layer)

    def forward(self, x, v_first):
        if self.layer_id == 0:
            x = self.ln0(x)
        dx, v_first = self.att(self.ln1(x), v_first)
        x = x + dx
        return x + self.ffn(self.ln2(x)), v_first


class RWKV7(nn.Module):
    def __init__(self, n_layer, C, N, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, C)
        self.blocks = nn.ModuleList(Block(C, N, i, n_layer) for i in range(n_layer))
        self.ln_out = nn.LayerNorm(C)
        self.head = nn.Linear(C, vocab, bias=False)
        with torch.no_grad():
            self.emb.weight.uniform_(-1e-4, 1e-4)
            gain = 0.5 * (math.sqrt(vocab / C) if vocab > C else 1.0)
            nn.init.orthogonal_(self.head.weight, gain=gain)

    def forward(self, idx):
        x = self.emb(idx)
        v_first = None
        for blk in self.blocks:
            x, v_first = blk(x, v_first)
        return self.head(self.ln_out(x))


def official_state_dict(model):
    """Official key order: emb, then per block ln0 (layer 0 only), ln1, ln2, att.*, ffn.*."""
    sd = model.state_dict()
    order = ["emb.weight"]
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}."
        if i == 0:
            order += [p + "ln0.weight", p + "ln0.bias"]
        order += [p + "ln1.weight", p + "ln1.bias", p + "ln2.weight", p + "ln2.bias"]
        att = ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "w1", "w2", "a0", "a1", "a2"]
        if i > 0:
            att += ["v0", "v1", "v2"]
        att += ["g1", "g2", "k_k", "k_a", "r_k", "receptance.weight", "key.weight",
                "value.weight", "output.weight", "ln_x.weight", "ln_x.bias"]
        order += [p + "att." + n for n in att]
        order += [p + "ffn.x_k", p + "ffn.key.weight", p + "ffn.value.weight"]
    order += ["ln_out.weight", "ln_out.bias", "head.weight"]
    assert sorted(order) == sorted(sd.keys()), set(order) ^ set(sd.keys())
    return collections.OrderedDict((k, sd[k].detach().clone().contiguous()) for k in order)


def round_like_f16_file(sd):
    """Round what `rwkvctl model convert --type f16` stores as f16 (the 2-D .weight matrices:
    emb, head, r/k/v/o and the FFN) and keep the rest (LoRAs, vectors) exact."""
    return {k: (v.half().float() if k.endswith(".weight") and v.dim() == 2 else v.float())
            for k, v in sd.items()}


def load_pth(path, dtype=torch.float32, f16=False):
    sd = torch.load(path, map_location="cpu")
    if f16:
        sd = round_like_f16_file(sd)
    n_layer = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    vocab, C = sd["emb.weight"].shape
    H, N = sd["blocks.0.att.r_k"].shape
    assert H * N == C
    model = RWKV7(n_layer, C, N, vocab)
    # Loras may have other widths than this script's defaults: size the parameters from the file.
    for name, p in model.named_parameters():
        if p.shape != sd[name].shape:
            mod, attr = model.get_submodule(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]
            setattr(mod, attr, nn.Parameter(torch.empty(sd[name].shape)))
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    return model.to(dtype).eval()


# ------------------------------------------------------------------------------------------------
# Training


def log(f, msg):
    print(msg, flush=True)
    if f:
        f.write(msg + "\n")
        f.flush()


@torch.no_grad()
def valid_bpb(model, data, ctx, n_windows, gen):
    """Mean bits/byte over fixed windows of the held-out text (each from a zero state)."""
    starts = torch.randint(0, len(data) - ctx - 1, (n_windows,), generator=gen)
    tot = 0.0
    for i in range(0, n_windows, 16):
        s = starts[i:i + 16]
        x = torch.stack([data[j:j + ctx] for j in s.tolist()])
        y = torch.stack([data[j + 1:j + ctx + 1] for j in s.tolist()])
        logits = model(x)
        tot += F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), reduction="sum").item()
    return tot / (n_windows * ctx) / LN2


def cmd_train(a):
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    os.makedirs(a.out_dir, exist_ok=True)

    if a.corpus:
        with open(a.corpus, encoding="ascii") as f:
            chapters = [c + "\n\n" for c in f.read().split("\n\n") if c.strip()]
    else:
        chapters = kjv_text()
    train_txt, valid_txt = split_corpus(chapters, a.holdout_every)
    for name, txt in (("train.txt", train_txt), ("valid.txt", valid_txt)):
        with open(os.path.join(a.out_dir, name), "w", encoding="ascii") as f:
            f.write(txt)
    train = torch.tensor(list(train_txt.encode("ascii")), dtype=torch.long)
    valid = torch.tensor(list(valid_txt.encode("ascii")), dtype=torch.long)

    model = RWKV7(a.layers, a.embd, a.head_size, 256)
    n_params = sum(p.numel() for p in model.parameters())

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if (n.endswith(".weight") and p.dim() == 2 and "ln" not in n) else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.99), eps=1e-8)

    state_path = os.path.join(a.out_dir, "train-state.pt")
    step, tokens_seen, elapsed_before = 0, 0, 0.0
    gen = torch.Generator().manual_seed(a.seed)
    if a.resume and os.path.exists(state_path):
        st = torch.load(state_path)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, tokens_seen, elapsed_before = st["step"], st["tokens"], st["elapsed"]
        gen.set_state(st["gen"])
        torch.set_rng_state(st["rng"])

    logf = open(os.path.join(a.out_dir, "train.log"), "a")
    curve = open(os.path.join(a.out_dir, "loss.tsv"), "a")
    if step == 0:
        curve.write("step\ttokens\tminutes\tlr\ttrain_bpb\tvalid_bpb\n")
    log(logf, f"# layers={a.layers} embd={a.embd} head_size={a.head_size} params={n_params} "
              f"ctx={a.ctx} batch={a.batch} lr={a.lr}->{a.lr_final} seed={a.seed} "
              f"train_bytes={len(train)} valid_bytes={len(valid)} budget_min={a.minutes}")

    budget = a.minutes * 60.0
    t0 = time.time() - elapsed_before
    last_ckpt = time.time()
    ema = None

    def save(tag):
        sd = official_state_dict(model)
        torch.save(sd, os.path.join(a.out_dir, tag))
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "tokens": tokens_seen, "elapsed": time.time() - t0,
                    "gen": gen.get_state(), "rng": torch.get_rng_state()}, state_path)

    model.train()
    while True:
        frac = min((time.time() - t0) / budget, 1.0)
        if frac >= 1.0 or (a.max_steps and step >= a.max_steps):
            break
        # warmup, then cosine from lr to lr_final over the wall-clock budget
        warm = min(1.0, (step + 1) / a.warmup)
        lr = warm * (a.lr_final + 0.5 * (a.lr - a.lr_final) * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr

        starts = torch.randint(0, len(train) - a.ctx - 1, (a.batch,), generator=gen).tolist()
        x = torch.stack([train[s:s + a.ctx] for s in starts])
        y = torch.stack([train[s + 1:s + a.ctx + 1] for s in starts])
        loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += a.batch * a.ctx
        bpb = loss.item() / LN2
        ema = bpb if ema is None else 0.98 * ema + 0.02 * bpb

        if step % a.eval_every == 0:
            model.eval()
            vb = valid_bpb(model, valid, a.ctx, a.eval_windows,
                           torch.Generator().manual_seed(1234))
            model.train()
            mins = (time.time() - t0) / 60
            curve.write(f"{step}\t{tokens_seen}\t{mins:.2f}\t{lr:.3g}\t{ema:.4f}\t{vb:.4f}\n")
            curve.flush()
            log(logf, f"step {step} tokens {tokens_seen} min {mins:.1f} lr {lr:.3g} "
                      f"train_bpb {ema:.4f} valid_bpb {vb:.4f}")
        elif step % 10 == 0:
            log(logf, f"step {step} min {(time.time() - t0) / 60:.1f} train_bpb {ema:.4f}")
        if time.time() - last_ckpt > a.ckpt_minutes * 60:
            save("checkpoint.pth")
            last_ckpt = time.time()

    model.eval()
    vb = valid_bpb(model, valid, a.ctx, a.eval_windows, torch.Generator().manual_seed(1234))
    mins = (time.time() - t0) / 60
    curve.write(f"{step}\t{tokens_seen}\t{mins:.2f}\t{lr:.3g}\t{ema:.4f}\t{vb:.4f}\n")
    log(logf, f"done step {step} tokens {tokens_seen} min {mins:.1f} valid_bpb {vb:.4f}")
    save("model.pth")


# ------------------------------------------------------------------------------------------------
# Checks on an exported .pth


def parse_tokens(s):
    return [int(t) for t in s.split(",") if t.strip()]


@torch.no_grad()
def cmd_logits(a):
    torch.set_num_threads(1)
    model = load_pth(a.model, torch.float64, f16=a.f16)
    toks = parse_tokens(a.tokens) if a.tokens else list(a.text.encode())
    out = model(torch.tensor([toks]))[0, -1]
    for v in out.tolist():
        print("%.9g" % v)


@torch.no_grad()
def rnn_step_logits(model, data, chunk):
    """Whole-text log-loss in chunks, carrying nothing across chunks (GPT mode, zero state)."""
    tot = 0.0
    for i in range(0, len(data) - 1, chunk):
        x = data[i:i + chunk][None]
        y = data[i + 1:i + chunk + 1][None]
        x = x[:, :y.shape[1]]
        tot += F.cross_entropy(model(x)[0], y[0], reduction="sum").item()
    return tot


@torch.no_grad()
def cmd_bpb(a):
    torch.set_num_threads(1)
    model = load_pth(a.model)
    with open(a.text, "rb") as f:
        data = torch.tensor(list(f.read()[:a.max_bytes]), dtype=torch.long)
    tot = rnn_step_logits(model, data, a.chunk)
    print(f"bytes {len(data) - 1} bpb {tot / (len(data) - 1) / LN2:.4f} (chunk {a.chunk})")


@torch.no_grad()
def cmd_sample(a):
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    model = load_pth(a.model)
    toks = list(a.prompt.encode())
    for _ in range(a.max_tokens):
        logits = model(torch.tensor([toks[-a.window:]]))[0, -1] / a.temperature
        p = torch.softmax(logits, -1)
        toks.append(int(torch.multinomial(p, 1)))
    sys.stdout.write(bytes(toks).decode("ascii", "replace") + "\n")


def cmd_selftest(a):
    """Gradient check of WKV7 against plain autograd (float64, tiny)."""
    torch.manual_seed(0)
    B, T, H, N = 2, 5, 2, 4
    r, k, v = (torch.randn(B, T, H, N, dtype=torch.float64, requires_grad=True) for _ in range(3))
    w = torch.rand(B, T, H, N, dtype=torch.float64).mul(0.5).add(0.45).requires_grad_()
    kk = F.normalize(torch.randn(B, T, H, N, dtype=torch.float64), dim=-1)
    aa = torch.rand(B, T, H, N, dtype=torch.float64)
    z = (-kk).requires_grad_()
    b = (kk * aa).requires_grad_()
    ins = (r, w, k, v, z, b)
    assert torch.autograd.gradcheck(WKV7.apply, ins)
    y1, y2 = WKV7.apply(*ins), wkv7_reference(*ins)
    assert torch.allclose(y1, y2)
    g = torch.randn_like(y1)
    g1 = torch.autograd.grad(y1, ins, g)
    g2 = torch.autograd.grad(y2, ins, g)
    for x1, x2 in zip(g1, g2):
        assert torch.allclose(x1, x2)
    print("WKV7 gradcheck ok")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    t = sub.add_parser("train")
    t.add_argument("--out-dir", default="/tmp/rwkvd-train")
    t.add_argument("--corpus", help="text file, chapters separated by blank lines "
                                    "(default: the KJV via bible(1))")
    t.add_argument("--holdout-every", type=int, default=20)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--embd", type=int, default=256)
    t.add_argument("--head-size", type=int, default=64)
    t.add_argument("--ctx", type=int, default=128)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--lr-final", type=float, default=1e-4)
    t.add_argument("--warmup", type=int, default=50)
    t.add_argument("--weight-decay", type=float, default=0.1)
    t.add_argument("--minutes", type=float, default=45.0)
    t.add_argument("--max-steps", type=int, default=0)
    t.add_argument("--eval-every", type=int, default=100)
    t.add_argument("--eval-windows", type=int, default=64)
    t.add_argument("--ckpt-minutes", type=float, default=5.0)
    t.add_argument("--seed", type=int, default=20261123)
    t.add_argument("--resume", action="store_true")
    lg = sub.add_parser("logits")
    lg.add_argument("model")
    lg.add_argument("--tokens")
    lg.add_argument("--text")
    lg.add_argument("--f16", action="store_true",
                    help="round the weights the way the f16 .rwkv file stores them")
    bp = sub.add_parser("bpb")
    bp.add_argument("model")
    bp.add_argument("text")
    bp.add_argument("--chunk", type=int, default=1024)
    bp.add_argument("--max-bytes", type=int, default=1 << 30)
    sp = sub.add_parser("sample")
    sp.add_argument("model")
    sp.add_argument("--prompt", default="And God said")
    sp.add_argument("--max-tokens", type=int, default=200)
    sp.add_argument("--temperature", type=float, default=0.8)
    sp.add_argument("--window", type=int, default=256)
    sp.add_argument("--seed", type=int, default=1)
    sub.add_parser("selftest")
    a = p.parse_args()
    {"train": cmd_train, "logits": cmd_logits, "bpb": cmd_bpb, "sample": cmd_sample,
     "selftest": cmd_selftest, None: lambda _: p.print_help()}[a.cmd](a)


if __name__ == "__main__":
    main()
