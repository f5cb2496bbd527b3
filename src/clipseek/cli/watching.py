"""The `--watch` part of `clipseek index` and `clipseek serve`: print what each batch changed."""

from __future__ import annotations

import time

from clipseek.cli.output import eprint, print_json
from clipseek.core.paths import quote_path


def batch_line(summary) -> str | None:
    """One line for a batch that changed something (None when nothing did)."""
    parts = [(summary.added, "added"), (summary.updated, "updated"), (summary.moved, "moved"),
             (summary.removed, "removed"), (len(summary.skipped), "skipped")]
    changed = [f"{n} {what}" for n, what in parts if n]
    if not changed:
        return None
    return f"{time.strftime('%H:%M:%S')} {', '.join(changed)} ({summary.total} images)"


def watching_line(watcher, dirs) -> str:
    how = "file events" if watcher.mode == "events" else \
        f"polling every {watcher.interval:g} s: {watcher.why_polling}"
    return f"watching {', '.join(dirs)} ({how}); Ctrl-C stops"


def watch_index(gallery, dirs, poll: bool, interval: float, fmt: str) -> int:
    """`clipseek index DIR --watch`: the first pass is done; follow the folders until Ctrl-C."""
    from clipseek.gallery.sync import check_roots
    from clipseek.gallery.watch import Watcher

    def on_batch(summary) -> None:
        if fmt == "json":
            print_json(summary.to_dict())
        else:
            line = batch_line(summary)
            if line:
                print(line, flush=True)
            for skipped in summary.skipped:  # which file, and why
                print(f"  skipped {quote_path(skipped.path)}: {skipped.reason}", flush=True)

    roots = check_roots(dirs)
    watcher = Watcher(roots, lambda: gallery.index(roots), on_batch, poll=poll, interval=interval,
                      ignore=[gallery.db_path + ".thumbs"], check=gallery.check_database)
    watcher.start()
    eprint(watching_line(watcher, roots))
    try:
        with gallery.writing():  # the watcher is this gallery's writer until it stops
            # events since the first pass began are caught by this batch: start the loop with one
            watcher.run(first_pass=True)
    except KeyboardInterrupt:
        total = gallery.store.count()
        gallery.close()
        eprint(f"stopped watching; {total} images in {gallery.db_path}, every batch committed")
        return 130
    return 0


def serve_watch_options(dirs, poll: bool, interval: float) -> dict:
    """`serve --watch`: the folders, and callbacks that print each batch and a stop on stderr."""
    from clipseek.gallery.sync import check_roots

    def on_batch(summary) -> None:
        line = batch_line(summary)
        if line:
            eprint(f"clipseek: watch: {line}")
        for skipped in summary.skipped:
            eprint(f"clipseek: watch: skipped {quote_path(skipped.path)}: {skipped.reason}")

    def on_stop(error: BaseException) -> None:
        eprint(f"clipseek: watch: {error}" if str(error) else f"clipseek: watch stopped ({error!r})")

    return {"dirs": check_roots(dirs), "poll": poll, "interval": interval, "on_batch": on_batch,
            "on_stop": on_stop, "on_start": lambda w: eprint(f"clipseek: {watching_line(w, w.roots)}")}
