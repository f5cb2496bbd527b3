"""Recipe sweep for the bundled demo model: many training configs in parallel on one GPU.

    python benchmarks/recipe_sweep.py all DIR RESULTS.jsonl [NAME,NAME,...]   # prep, then configs in parallel
    python benchmarks/recipe_sweep.py prep DIR [N]      # draw + preprocess N synthetic images once (all cores)
    python benchmarks/recipe_sweep.py one NAME DIR RESULTS.jsonl

Each config (CONFIGS below: changes to BASE) appends one JSON line per epoch to RESULTS (loss, and
every `eval_every` epochs zero-shot figures on the val split; test figures after the last epoch).
Same model, batch sampler, loss, optimizer and schedule code as `clipseek train`; the data pipeline
differs (all pixels held on the device, captions tokenized once), so the numbers guide the CPU recipe
rather than reproduce it. SWEEP_N sets the images `all` draws; SWEEP_LIMIT caps every split (smoke test).
Used to pick scripts/train_demo_model.sh's recipe (results in issue #3's note).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_model_eval import caption_hits

from clipseek.data import synthetic as syn

BASE = dict(bs=32, lr=1e-3, wd=0.1, warmup=500, gf=0.8, gf_end=None, epochs=20, n=28800,
            pos=None, eval_every=5, width=64, layers=4, heads=2, image=32, patch=4)
POS = "colour,shape,size,background"
CONFIGS = {
    "base": {},
    "pos": dict(pos=POS),
    "pos_gf09": dict(pos=POS, gf=0.9),
    "pos_ramp": dict(pos=POS, gf=0.5, gf_end=0.95),
    "pos_lr2": dict(pos=POS, lr=2e-3),
    "pos_bs64": dict(pos=POS, bs=64, lr=1.4e-3),
    "pos_n2": dict(pos=POS, n=57600, epochs=10),
    "pos_e40": dict(pos=POS, epochs=40, eval_every=10),
    "pos_w96": dict(pos=POS, width=96),
    "pos_64p8": dict(pos=POS, image=64, patch=8),
    "pos_l6": dict(pos=POS, layers=6),
    "base_e40": dict(epochs=40, eval_every=10),
    "pos_h4": dict(pos=POS, heads=4),
    # round 2: ~400k training samples each (about the CPU budget), eval every epoch
    "n2_64": dict(pos=POS, n=57600, image=64, patch=8, bs=64, lr=1.4e-3, epochs=10, eval_every=1),
    "n4_64": dict(pos=POS, n=115200, image=64, patch=8, bs=64, lr=1.4e-3, epochs=5, eval_every=1),
    "n4_32": dict(pos=POS, n=115200, bs=64, lr=1.4e-3, epochs=5, eval_every=1),
    "n4_64_nopos": dict(n=115200, image=64, patch=8, bs=64, lr=1.4e-3, epochs=5, eval_every=1),
    "n4_64_h4": dict(pos=POS, n=115200, image=64, patch=8, bs=64, lr=1.4e-3, epochs=5, eval_every=1, heads=4),
    "n4_64_l6": dict(pos=POS, n=115200, image=64, patch=8, bs=64, lr=1.4e-3, epochs=5, eval_every=1, layers=6),
    "n4_64_gf07": dict(pos=POS, n=115200, image=64, patch=8, bs=64, lr=1.4e-3, epochs=5, eval_every=1, gf=0.7),
    "n4_64_e7": dict(pos=POS, n=115200, image=64, patch=8, bs=64, lr=1.4e-3, epochs=7, eval_every=1),
    "pos_gf09_lr2": dict(pos=POS, gf=0.9, lr=2e-3),
}


_CFGS = {}


def _render(i_s):
    from clipseek.core.preprocess import PreprocessCfg, preprocess
    from clipseek.model.scratch import make_processor

    i, s, seed = i_s
    img = syn.render(s.colour, s.shape, s.size, s.background, seed * 1_000_003 + i, 64)
    if not _CFGS:
        _CFGS.update({k: PreprocessCfg.from_processor(make_processor(k)) for k in (32, 64)})
    c32, c64 = _CFGS[32], _CFGS[64]
    return preprocess(img, c32).astype(np.float16), preprocess(img, c64).astype(np.float16)


def prep(d: str, n: int = 57600, seed: int = 0) -> None:
    from multiprocessing import Pool

    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    samples = syn.plan(n, seed)
    t = time.time()
    with Pool(max(1, (os.cpu_count() or 2) - 1)) as pool:
        out = pool.map(_render, [(i, s, seed) for i, s in enumerate(samples)], chunksize=256)
    np.save(d / "x32.npy", np.stack([o[0] for o in out]))
    np.save(d / "x64.npy", np.stack([o[1] for o in out]))
    rows = [dict(caption=s.caption, colour=s.colour, shape=s.shape, size=s.size, background=s.background,
                 split=s.split, label=s.label) for s in samples]
    (d / "rows.json").write_text(json.dumps(rows))
    print(f"prep: {n} images in {time.time() - t:.0f}s", flush=True)


def img_feats(model, x, bs=1024):
    import torch

    with torch.no_grad():
        return torch.cat([torch.nn.functional.normalize(model.visual_projection(
            model.vision_model(pixel_values=x[k:k + bs]).pooler_output), dim=-1) for k in range(0, len(x), bs)])


def txt_feats(model, ids, am, bs=1024):
    import torch

    with torch.no_grad():
        return torch.cat([torch.nn.functional.normalize(model.text_projection(model.text_model(
            input_ids=ids[k:k + bs], attention_mask=am[k:k + bs]).pooler_output), dim=-1)
            for k in range(0, len(ids), bs)])


def evaluate(model, tok, x, rows, dev, held):
    import torch

    model.eval()

    def enc_text(texts):
        t = tok(texts, padding=True, return_tensors="pt")
        return txt_feats(model, t["input_ids"].to(dev), t["attention_mask"].to(dev))

    v = img_feats(model, x)

    def top1(names, truth, template):
        w = enc_text([template.format(nm) for nm in names])
        pred = (v @ w.T).argmax(1).cpu().numpy()
        return pred, float(np.mean([names[p] == t for p, t in zip(pred, truth)]))

    _, shape = top1(list(syn.SHAPES), [r["shape"] for r in rows], "a photo of a {}.")
    _, colour = top1(list(syn.COLOURS), [r["colour"] for r in rows], "a photo of a {} shape.")
    classes = [f"{c} {s}" for c in syn.COLOURS for s in syn.SHAPES]
    pred, cls = top1(classes, [r["label"] for r in rows], "a photo of a {}.")
    correct = np.array([classes[p] == r["label"] for p, r in zip(pred, rows)])
    is_held = np.array([r["label"] in held for r in rows])
    t = enc_text([r["caption"] for r in rows])
    top5 = torch.topk(t @ v.T, 5, dim=1).indices.cpu().numpy()
    hits = caption_hits(rows, top5)
    model.train()
    return dict(shape=round(shape, 4), colour=round(colour, 4), cls=round(cls, 4),
                held=round(float(correct[is_held].mean()), 4) if is_held.any() else None,
                r5=round(float(np.mean(hits)), 4))


def one(name: str, d: str, results: str) -> None:
    import torch
    from transformers import CLIPModel, CLIPTokenizer

    from clipseek.core.prompts import words_of
    from clipseek.model.scratch import save_new_checkpoint
    from clipseek.training.batches import GroupedBatchSampler
    from clipseek.training.loss import PositiveMatcher, contrastive_loss
    from clipseek.training.optim import adamw, lr_schedule, optimizer_step, param_groups, ramp

    torch.set_num_threads(1)
    cfg = {**BASE, **CONFIGS[name]}
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    d = Path(d)
    rows_all = json.loads((d / "rows.json").read_text())
    X = np.load(d / ("x32.npy" if cfg["image"] == 32 else "x64.npy"), mmap_mode="r")
    n = min(cfg["n"], len(rows_all))
    tr = [i for i in range(n) if rows_all[i]["split"] == "train"]
    lim = int(os.environ.get("SWEEP_LIMIT", "0")) or None
    tr = tr[:lim] if lim else tr
    test = [i for i in range(min(28800, len(rows_all))) if rows_all[i]["split"] == "test"][:lim]
    val = [i for i in range(min(28800, len(rows_all))) if rows_all[i]["split"] == "val"][:lim]
    held = {" ".join(h) for h in syn.HELD_OUT}
    rows_tr = [rows_all[i] for i in tr]
    caps = [r["caption"] for r in rows_tr]
    words = words_of(caps + ["a photo of a {}."])
    tmp = tempfile.mkdtemp()
    save_new_checkpoint(tmp, words, seed=0, image_size=cfg["image"], patch_size=cfg["patch"],
                        width=cfg["width"], layers=cfg["layers"], heads=cfg["heads"], text_width=64,
                        text_layers=3, projection_dim=64)
    model = CLIPModel.from_pretrained(tmp).to(dev)
    tok = CLIPTokenizer.from_pretrained(tmp)
    xtr = torch.from_numpy(np.ascontiguousarray(X[tr])).to(dev).float()
    xte = torch.from_numpy(np.ascontiguousarray(X[test])).to(dev).float()
    xva = torch.from_numpy(np.ascontiguousarray(X[val])).to(dev).float()
    t = tok(caps, padding="max_length", max_length=24, truncation=True, return_tensors="pt")
    ids, am = t["input_ids"].to(dev), t["attention_mask"].to(dev)
    matcher = PositiveMatcher(caps, {k: [r[k] for r in rows_tr] for k in cfg["pos"].split(",")}) \
        if cfg["pos"] else None
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    sampler = GroupedBatchSampler([r["colour"] for r in rows_tr], cfg["bs"], cfg["gf"], gen)
    total = len(sampler) * cfg["epochs"]
    opt = adamw(param_groups(model, cfg["wd"]), cfg["lr"])
    sched = lr_schedule(opt, cfg["warmup"], total)
    t0 = time.time()
    model.train()
    for epoch in range(cfg["epochs"]):
        if cfg["gf_end"] is not None:
            sampler.frac = ramp(cfg["gf"], cfg["gf_end"], epoch, cfg["epochs"])
        losses = []
        for b in sampler:
            bi = torch.tensor(b, device=dev)
            am_b = am[bi]
            L = int(am_b.sum(1).max())
            out = model(input_ids=ids[bi, :L], attention_mask=am_b[:, :L], pixel_values=xtr[bi])
            pos = torch.from_numpy(matcher.mask(b)).to(dev) if matcher else None
            loss = contrastive_loss(out.logits_per_image, pos)
            loss.backward()
            optimizer_step(model, opt, sched)
            losses.append(loss.detach())
        rec = dict(name=name, epoch=epoch + 1, loss=round(float(torch.stack(losses).mean()), 4),
                   sec=round(time.time() - t0))
        last = epoch + 1 == cfg["epochs"]
        if (epoch + 1) % cfg["eval_every"] == 0 or last:
            rec["val"] = evaluate(model, tok, xva, [rows_all[i] for i in val], dev, held)
        if last:
            rec["test"] = evaluate(model, tok, xte, [rows_all[i] for i in test], dev, held)
            rec["cfg"] = cfg
        with open(results, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "--help"
    if cmd in ("-h", "--help"):
        print(__doc__)
    elif cmd == "prep":
        prep(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 57600)
    elif cmd == "one":
        one(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "all":
        d, results = sys.argv[2], sys.argv[3]
        names = sys.argv[4].split(",") if len(sys.argv) > 4 else list(CONFIGS)
        if not (Path(d) / "rows.json").exists():
            prep(d, int(os.environ.get("SWEEP_N", "57600")))
        procs = [subprocess.Popen([sys.executable, __file__, "one", nm, d, results]) for nm in names]
        for p in procs:
            p.wait()
    else:
        sys.exit(f"unknown command {cmd!r}; see --help")


if __name__ == "__main__":
    main()
