#!/usr/bin/env python3
"""Reference for `pivot bench`: the same MLLM (SigLIP tower -> mlp2x_gelu -> Qwen2) written in
PyTorch, timed on the same batch with the same threads. Prints one JSON line:
{"sft_ms": ..., "dpo_ms": ..., "peak_rss_mib": ...}.

usage: reference_step.py DIR STEPS THREADS   (DIR holds config.json and batch.safetensors)
"""
import json
import math
import resource
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "I64": torch.int64}


def load_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return out


class VitLayer(nn.Module):
    def __init__(self, d, mlp, heads, eps):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def forward(self, x):
        B, T, D = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(B, T, self.heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, D))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class LmLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.nh, self.nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        hs = d // self.nh
        self.n1, self.n2 = RMSNorm(d, c["rms_norm_eps"]), RMSNorm(d, c["rms_norm_eps"])
        self.q, self.k, self.v = nn.Linear(d, self.nh * hs), nn.Linear(d, self.nkv * hs), nn.Linear(d, self.nkv * hs)
        self.o = nn.Linear(self.nh * hs, d, bias=False)
        m = c["intermediate_size"]
        self.gate, self.up, self.down = nn.Linear(d, m, bias=False), nn.Linear(d, m, bias=False), nn.Linear(m, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, D = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, self.nh, -1).transpose(1, 2)
        k = self.k(h).view(B, T, self.nkv, -1).transpose(1, 2)
        v = self.v(h).view(B, T, self.nkv, -1).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(self.nh // self.nkv, 1), v.repeat_interleave(self.nh // self.nkv, 1)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) + mask, dim=-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, D))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Mllm(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        vc, tc = cfg["vision_config"], cfg["text_config"]
        d, p = vc["hidden_size"], vc["patch_size"]
        n = (vc["image_size"] // p) ** 2
        self.feature_layers = vc["num_hidden_layers"] + 1 + cfg["vision_feature_layer"] if cfg["vision_feature_layer"] < 0 else cfg["vision_feature_layer"]
        self.patch = nn.Conv2d(3, d, p, stride=p)
        self.pos = nn.Parameter(torch.randn(n, d) * 0.02)
        self.vit = nn.ModuleList(VitLayer(d, vc["intermediate_size"], vc["num_attention_heads"], vc["layer_norm_eps"])
                                 for _ in range(vc["num_hidden_layers"]))
        self.proj1, self.proj2 = nn.Linear(d, tc["hidden_size"]), nn.Linear(tc["hidden_size"], tc["hidden_size"])
        self.embed = nn.Embedding(tc["vocab_size"], tc["hidden_size"])
        self.layers = nn.ModuleList(LmLayer(tc) for _ in range(tc["num_hidden_layers"]))
        self.norm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])
        self.head = nn.Linear(tc["hidden_size"], tc["vocab_size"], bias=False)
        self.tc, self.image_token = tc, cfg["image_token_index"]

    def forward(self, pixels, ids, attn, prefix):
        x = self.patch(pixels).flatten(2).transpose(1, 2) + self.pos
        for layer in self.vit[:self.feature_layers]:
            x = layer(x)
        visual = self.proj2(F.gelu(self.proj1(x)))
        emb = self.embed(ids)
        emb = emb.masked_scatter((ids == self.image_token).unsqueeze(-1).expand_as(emb), visual)
        B, T = ids.shape
        pos = (attn.cumsum(1) - 1).clamp(min=0).float()
        hs = self.tc["hidden_size"] // self.tc["num_attention_heads"]
        inv = 1.0 / (self.tc["rope_theta"] ** (torch.arange(0, hs, 2).float() / hs))
        f = pos.unsqueeze(-1) * inv
        e = torch.cat((f, f), -1)
        cos, sin = e.cos().unsqueeze(1), e.sin().unsqueeze(1)
        i = torch.arange(T)
        allowed = (i[None, :] <= i[:, None])[None] | ((i[None, :, None] < prefix[:, None, None]) & (i[None, None, :] < prefix[:, None, None]))
        allowed = allowed & attn.bool()[:, None, :]
        mask = torch.zeros(B, T, T).masked_fill(~allowed, -1e30).unsqueeze(1)
        for layer in self.layers:
            emb = layer(emb, cos, sin, mask)
        return self.head(self.norm(emb))


def seq_logps(logits, labels):
    valid = labels != -100
    lp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * valid).sum(-1)


def time_steps(steps, fn):
    fn()
    fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) * 1000 / steps


def main():
    folder, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = json.load(open(folder + "/config.json"))
    batch = load_safetensors(folder + "/batch.safetensors")
    pixels, ids, attn, labels, prefix = (batch[k] for k in ("pixels", "input_ids", "attention_mask", "labels", "prefix_len"))
    B = ids.shape[0] // 2
    policy, reference = Mllm(cfg), Mllm(cfg)
    reference.load_state_dict(policy.state_dict())
    reference.requires_grad_(False)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-5, weight_decay=0)

    def sft():
        logits = policy(pixels[:B], ids[:B], attn[:B], prefix[:B])
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:B].reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()

    def dpo():
        lp = seq_logps(policy(pixels, ids, attn, prefix), labels)
        with torch.no_grad():
            ref = seq_logps(reference(pixels, ids, attn, prefix), labels)
        h = (lp[:B] - ref[:B]) - (lp[B:] - ref[B:])
        loss = -F.logsigmoid(0.1 * h).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()

    result = {"sft_ms": time_steps(steps, sft), "dpo_ms": time_steps(steps, dpo),
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
