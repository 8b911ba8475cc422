"""In-process gallery pages: thumbsvc's request path (no HTTP) asked for the three sizes of each photo.

A *page* is one photo's three thumbnails (150x150 cover, 400x300 contain, 1200x900 contain, JPEG
q85), asked for through ``Thumbnailer.parse`` + ``Thumbnailer.thumbnail`` exactly as the server
does, result cache off, source cache on. Every page uses the photo under a fresh directory name
(``g0000/``, ``g0001/``, ... links to the photos), so nothing carries over from one page to the
next. Each arm (a checkout and its settings) runs in its own process; rounds are interleaved like
``bench.inprocess`` (shuffled photos, rotated arm order), and the clock is the CPU time of the arm's
process (all threads). Reported: CPU ms per thumbnail (mean over photos of the per-photo median page
time / 3), round spread, ratio to the first arm, decodes per page (``thumbsvc_decodes_total`` where
the checkout has it), peak RSS, and the luma PSNR of every output against a full-decode LANCZOS
reference (``bench.quality``).

    python -m bench.gallery --arm base=/tmp/wt-base --arm off=/tmp/wt-new:decoded_cache_bytes=0 --arm on=/tmp/wt-new
    python -m bench.gallery --workload w2 --together --rounds 7 --arm ...

``--together`` asks for a page's three sizes at once (two render slots) instead of one after another;
``--lone`` asks for each size under a directory name of its own, so no size can share another's work
(what a request costs when it is the only one for its photo).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

if not __package__:  # pragma: no cover - guard against `python bench/<script>.py`
    raise SystemExit("run bench scripts as modules from the repository root, e.g. python -m bench.gallery")

from bench.procs import machine_info, popen
from bench.stats import summary
from bench.workloads import REPO, SIZES, cache_dir, w1_photos, w2_photos

RESULTS = REPO / "bench" / "results"
PAGE_DIRS = 400
KEY = "bench-key-not-secret"


def media_root(name: str, photos: list[Path]) -> Path:
    """Return a media root holding ``photos/<name>`` (copies) plus PAGE_DIRS directory links to it."""
    root = cache_dir() / f"gallery-{name}"
    (root / "photos").mkdir(parents=True, exist_ok=True)
    for src in photos:
        dest = root / "photos" / src.name
        if not dest.exists() or dest.stat().st_size != src.stat().st_size:
            dest.write_bytes(src.read_bytes())
    for index in range(PAGE_DIRS):
        link = root / f"g{index:04d}"
        if not link.is_symlink():
            link.symlink_to("photos", target_is_directory=True)
    return root


# --- worker: one arm in its own process ----------------------------------------------------------


def worker(root: str, settings_json: str, slots: int) -> None:
    """Serve pages read as JSON lines on stdin: {"photo", "folders" (one per size), "together", "keep"}."""
    tree = os.environ.get("THUMBSVC_BENCH_TREE")
    if tree:
        sys.path.insert(0, tree)
    import anyio

    from bench.worker import peak_rss_kib
    from thumbsvc.client import URLSigner
    from thumbsvc.config import Settings
    from thumbsvc.decode import configure
    from thumbsvc.service import Thumbnailer

    overrides = json.loads(settings_json)
    settings = Settings(keys=(KEY,), media_root=root, cache_bytes=0, render_slots=slots, **overrides)
    configure(settings.max_source_pixels)
    signer = URLSigner(key=KEY)
    proto = sys.stdout
    sys.stdout = sys.stderr

    async def main() -> None:
        thumbnailer = Thumbnailer(settings)
        registry = thumbnailer.metrics.registry

        def decodes() -> float | None:
            return registry.get_sample_value("thumbsvc_decodes_total")

        for line in sys.stdin:
            page = json.loads(line)
            paths = [
                signer.path(f"{folder}/{page['photo']}", width=w, height=h, fit=fit, format="jpeg", quality=85)
                for folder, (w, h, fit) in zip(page["folders"], SIZES, strict=True)
            ]
            outputs: list[bytes] = [b""] * len(paths)

            async def one(index: int, paths: list[str] = paths, outputs: list[bytes] = outputs) -> None:
                served = await thumbnailer.thumbnail(thumbnailer.parse(paths[index], None))
                outputs[index] = served.thumbnail.data

            before = decodes()
            start, cpu_start = time.perf_counter(), time.process_time()
            if page["together"]:
                async with anyio.create_task_group() as group:
                    for index in range(len(paths)):
                        group.start_soon(one, index)
            else:
                for index in range(len(paths)):
                    await one(index)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            after = decodes()
            answer: dict[str, object] = {
                "ms": elapsed * 1000,
                "cpu_ms": cpu * 1000,
                "decodes": None if before is None or after is None else after - before,
                "rss_kib": peak_rss_kib(),
            }
            if page.get("keep"):
                answer["outputs"] = [body.hex() for body in outputs]
            proto.write(json.dumps(answer) + "\n")
            proto.flush()
        await thumbnailer.aclose()

    anyio.run(main)


# --- driver ---------------------------------------------------------------------------------------


class Arm:
    def __init__(self, spec: str, root: Path, slots: int) -> None:
        self.name, _, rest = spec.partition("=")
        tree, _, settings = rest.partition(":")
        self.tree = Path(tree).resolve()
        self.settings: dict[str, object] = {}
        for item in filter(None, settings.split(",")):
            key, _, value = item.partition("=")
            self.settings[key] = float(value) if "." in value else int(value)
        self.proc = popen(
            [sys.executable, "-m", "bench.gallery", "--worker", str(root), json.dumps(self.settings), str(slots)],
            env={"THUMBSVC_BENCH_TREE": str(self.tree)},
            stdin=-1,
            stdout=-1,
            text=True,
        )
        self.peak_rss_kib = 0

    def page(self, photo: str, folders: list[str], together: bool, keep: bool = False) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"photo": photo, "folders": folders, "together": together, "keep": keep}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"arm {self.name} died (exit {self.proc.wait()})")
        answer: dict[str, object] = json.loads(line)
        self.peak_rss_kib = max(self.peak_rss_kib, int(answer["rss_kib"]))  # type: ignore[call-overload]
        return answer

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run_workload(name: str, photos: list[Path], args: argparse.Namespace) -> dict[str, object]:
    from bench.quality import measure

    root = media_root(name, photos)
    arms = [Arm(spec, root, args.slots) for spec in args.arm]
    counter = iter(range(10**9))

    def folders() -> list[str]:
        """Directory names for one page's sizes: one shared, or one each with --lone (cycling through them)."""
        if args.lone:
            return [f"g{next(counter) % PAGE_DIRS:04d}" for _ in SIZES]
        return [f"g{next(counter) % PAGE_DIRS:04d}"] * len(SIZES)

    mode = "each size alone" if args.lone else "together" if args.together else "one after another"
    print(f"[{name}] {len(photos)} photos x 3 sizes ({mode}), arms {', '.join(a.name for a in arms)}")
    quality: dict[str, dict[str, list[dict[str, object]]]] = {arm.name: {} for arm in arms}
    try:
        # Warm-up page per photo; it also keeps the outputs for the quality check.
        for photo in photos:
            names = folders()
            for arm in arms:
                answer = arm.page(photo.name, names, args.together, keep=True)
                rows = []
                for (w, h, fit), hex_body in zip(SIZES, answer["outputs"], strict=True):  # type: ignore[call-overload]
                    body = bytes.fromhex(hex_body)
                    rows.append({"size": f"{w}x{h}", "bytes": len(body), **measure(str(photo), fit, body)})
                quality[arm.name][photo.stem] = rows
        samples: dict[str, dict[str, list[float]]] = {arm.name: {p.stem: [] for p in photos} for arm in arms}
        decodes: dict[str, list[float]] = {arm.name: [] for arm in arms}
        round_means: dict[str, list[float]] = {arm.name: [] for arm in arms}
        for rnd in range(args.rounds):
            order = list(photos)
            random.Random(args.seed + rnd).shuffle(order)
            per_round: dict[str, list[float]] = {arm.name: [] for arm in arms}
            for position, photo in enumerate(order):
                names = folders()
                shift = (rnd + position) % len(arms)
                for arm in arms[shift:] + arms[:shift]:
                    answer = arm.page(photo.name, names, args.together)
                    per_thumb = float(answer[args.clock_key]) / len(SIZES)  # type: ignore[arg-type]
                    samples[arm.name][photo.stem].append(per_thumb)
                    per_round[arm.name].append(per_thumb)
                    if answer["decodes"] is not None:
                        decodes[arm.name].append(float(answer["decodes"]))  # type: ignore[arg-type]
            for arm in arms:
                round_means[arm.name].append(statistics.fmean(per_round[arm.name]))
            print(
                f"  round {rnd + 1}/{args.rounds}: ms/thumbnail  "
                + "  ".join(f"{arm.name} {round_means[arm.name][-1]:6.1f}" for arm in arms)
            )
    finally:
        for arm in arms:
            arm.close()

    base = arms[0].name
    result: dict[str, object] = {"workload": name, "mode": mode, "arms": {}}
    for arm in arms:
        medians = {stem: statistics.median(values) for stem, values in samples[arm.name].items()}
        psnrs = [float(row["psnr"]) for rows in quality[arm.name].values() for row in rows]  # type: ignore[arg-type]
        entry: dict[str, object] = {
            "tree": str(arm.tree),
            "settings": arm.settings,
            "ms_per_thumbnail": round(statistics.fmean(medians.values()), 2),
            "round_ms": summary(round_means[arm.name]),
            "per_photo_ms": {stem: round(v, 2) for stem, v in medians.items()},
            "decodes_per_page": round(statistics.fmean(decodes[arm.name]), 2) if decodes[arm.name] else None,
            "peak_rss_mib": round(arm.peak_rss_kib / 1024, 1),
            "psnr_mean": round(statistics.fmean(psnrs), 2),
            "psnr_min": round(min(psnrs), 2),
            "quality": quality[arm.name],
        }
        if arm.name != base:
            ratios = [a / b for a, b in zip(round_means[arm.name], round_means[base], strict=True)]
            deltas = [
                float(row["psnr"]) - float(base_row["psnr"])  # type: ignore[arg-type]
                for stem, rows in quality[arm.name].items()
                for row, base_row in zip(rows, quality[base][stem], strict=True)
            ]
            entry["vs_" + base] = {
                "time_ratio": round(entry["ms_per_thumbnail"] / result["arms"][base]["ms_per_thumbnail"], 3),  # type: ignore[index,operator]
                "round_ratio": summary(ratios),
                "psnr_mean_delta": round(statistics.fmean(deltas), 3),
                "psnr_worst_delta": round(min(deltas), 3),
            }
        result["arms"][arm.name] = entry  # type: ignore[index]
    return result


def print_report(result: dict[str, object]) -> None:
    arms: dict[str, dict[str, object]] = result["arms"]  # type: ignore[assignment]
    print(f"\n== {result['workload']} gallery pages ({result['mode']}): CPU ms per thumbnail ==")
    for name, e in arms.items():
        vs: dict[str, object] | None = next((v for k, v in e.items() if k.startswith("vs_")), None)  # type: ignore[misc]
        ratio = ""
        if vs:
            rounds: dict[str, float] = vs["round_ratio"]  # type: ignore[assignment]
            ratio = (
                f"x{vs['time_ratio']:.3f} (rounds {rounds['p10']:.3f}..{rounds['p90']:.3f}), "
                f"PSNR {vs['psnr_mean_delta']:+.3f} dB (worst {vs['psnr_worst_delta']:+.3f})"
            )
        spread = e["round_ms"]
        print(
            f"{name:10} {e['ms_per_thumbnail']:7.2f} ms [{spread['p10']:.1f}..{spread['p90']:.1f}]"  # type: ignore[index]
            f"  decodes/page {e['decodes_per_page']}  PSNR {e['psnr_mean']} (min {e['psnr_min']})"
            f"  rss {e['peak_rss_mib']} MiB  {ratio}"
        )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2], int(argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--arm", action="append", required=True, help="NAME=TREE[:setting=value,...]; the first is the baseline"
    )
    parser.add_argument("--workload", default="w1,w2", help="comma-separated: w1, w2")
    parser.add_argument("--photos", help="folder of photos to use instead of the six corpus photos")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--together", action="store_true", help="ask for a page's three sizes at once")
    parser.add_argument("--lone", action="store_true", help="ask for each size under its own directory name")
    parser.add_argument("--slots", type=int, default=2, help="render slots of each arm")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="JSON file (default bench/results/gallery-<time>.json)")
    args = parser.parse_args(argv)
    args.clock_key = "cpu_ms" if args.clock == "cpu" else "ms"
    photos = w1_photos(args.photos)
    workloads = {"w1": photos, "w2": w2_photos(photos)}
    report: dict[str, object] = {
        "benchmark": "gallery",
        "machine": machine_info(REPO),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": {
            "arms": args.arm,
            "rounds": args.rounds,
            "together": args.together,
            "lone": args.lone,
            "slots": args.slots,
            "clock": args.clock,
            "photos": [p.name for p in photos],
        },
        "workloads": [],
    }
    for name in [w.strip() for w in args.workload.split(",") if w.strip()]:
        result = run_workload(name, workloads[name], args)
        print_report(result)
        report["workloads"].append(result)  # type: ignore[attr-defined]
    report["loadavg_end"] = os.getloadavg()
    out = Path(args.out) if args.out else RESULTS / f"gallery-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
