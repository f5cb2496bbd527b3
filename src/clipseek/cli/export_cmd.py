"""`clipseek export onnx MODEL OUT`: a checkpoint as a self-contained ONNX Runtime folder."""

from __future__ import annotations

import typer

from clipseek.cli.app import app
from clipseek.cli.options import format_option
from clipseek.cli.output import check_format, print_json

export_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Export a checkpoint for other runtimes.")
app.add_typer(export_app, name="export")


@export_app.command("onnx")
def export_onnx_cmd(
    model: str = typer.Argument(..., help="Hub id, checkpoint dir or 'clipseek-demo'."),
    out: str = typer.Argument(..., help="Folder to write (new, empty, or an earlier export: replaced)."),
    int8: bool = typer.Option(False, "--int8", help="Also write int8 (dynamically quantized) towers."),
    fmt: str = format_option("table", "json", what="The summary as "),
) -> int:
    """Write both towers (fp32, + int8 with --int8), the tokenizer, the preprocessing and a manifest
    naming the source and its fingerprint; `--model OUT` then loads it with no torch."""
    from clipseek.model.loader import export_onnx

    check_format(fmt, ("table", "json"))
    doc = export_onnx(model, out, int8=int8)
    if fmt == "json":
        print_json({"out": out, **{k: doc[k] for k in ("source", "fingerprint", "dim", "int8", "exporter")},
                    "files": doc["files"]})
        return 0
    size = sum(f["size"] for f in doc["files"].values()) / 1e6
    print(f"exported {doc['source']} to {out}: {', '.join(doc['files'])} ({size:.1f} MB, "
          f"{doc['exporter']} exporter); use it with --model {out}")
    return 0
