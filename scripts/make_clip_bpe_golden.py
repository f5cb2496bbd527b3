"""Record open_clip's own token ids for a set of texts: the golden file that clipseek's shipped CLIP
BPE tokenizer (`model/clip_bpe.py`) is tested against (tests/fixtures/open_clip/clip_bpe_tokens.json).

Run it ONCE, in a scratch environment with open_clip's tokenizer and ftfy, never in the project's venv:

    python3 -m venv /tmp/oc && /tmp/oc/bin/pip install ftfy regex && pip download --no-deps open_clip_torch -d /tmp/ocw
    (unzip the wheel; open_clip/tokenizer.py imports torch, so put a torch on the path)
    /tmp/oc/bin/python scripts/make_clip_bpe_golden.py --open-clip-dir UNZIPPED/open_clip \
        --out tests/fixtures/open_clip/clip_bpe_tokens.json

The ids are `SimpleTokenizer()(texts)` (context length 77: truncated texts keep the end-of-text
token), stored without their trailing padding zeros.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

TEXTS = [
    "a photo of a cat.",
    "A Photo of the DOG",
    "a photo of a {}.",
    "itap of my dog!",
    "a bad photo of the sea-side, at 5:30pm (blurry)...",
    "What's this? It's a car, isn't it?",
    "it\u2019s a \u201cquoted\u201d word",  # curly quotes (phones type them): ftfy straightens them
    "  lots   of\twhite\nspace  ",
    "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e",
    "cafe\u0301 (a decomposed e\u0301)",  # NFC
    "\u00c4RGER \u00dcBER STRA\u00dfE",
    "\u732b\u306e\u5199\u771f",
    "\u0444\u043e\u0442\u043e \u043a\u043e\u0448\u043a\u0438",
    "\u0635\u0648\u0631\u0629 \u0642\u0637\u0629",
    "a dog \U0001f436 and a cat \U0001f431",
    "fish & chips &amp; peas",
    "#hashtag @user https://example.com/a_b?c=1",
    "100% 3.14159 2024-05-06 \u00bd \u00b2",
    "",
    "x" * 300,
    " ".join(["word"] * 100),
    "a picture of a big green tree on the lake by the house with a small boat and a red car and a cat "
    "and a dog under the blue sky, a long caption that runs past the seventy-seven tokens of CLIP's text "
    "tower so that the end is cut off and the end-of-text token is kept at the last place",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--open-clip-dir", required=True, help="the open_clip package folder (unzipped wheel)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("oc_tokenizer", Path(args.open_clip_dir) / "tokenizer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tok = mod.SimpleTokenizer()
    ids = tok(TEXTS).tolist()
    rows = [{"text": t, "ids": [i for i in row if i]} for t, row in zip(TEXTS, ids)]
    import ftfy
    from importlib.metadata import version

    head = json.dumps({"made_by": f"open_clip {version('open_clip_torch')} SimpleTokenizer, ftfy {ftfy.__version__}",
                       "context_length": 77}, ensure_ascii=False)[:-1]
    lines = ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in rows)  # one text per line
    Path(args.out).write_text(f"{head}, \"texts\": [\n  {lines}\n]}}\n", "utf-8")


if __name__ == "__main__":
    main()
