"""bench_norms.py's report: the Markdown tables of a run, --compare of two JSON files, and --plot.

Nothing here imports numpy at module level; matplotlib is imported by plot() only.
"""

import json
import sys

from _accuracy import render as render_accuracy
from _cases import ONE_THREAD, PEERS, SCALED

# --------------------------------------------------------------------------------------------------
# Report


def ceiling_for(row, result):
    """The copy ceiling whose footprint matches this case's working set."""
    info, ceil = result["info"], result["ceilings"]
    ws = row["working_set"]
    if ws <= 0.75 * info["L2_bytes"] and "L2" in ceil:
        return "L2", ceil["L2"]["GBps"]
    if ws <= 0.75 * info["L3_bytes"] and "L3" in ceil:
        return "L3", ceil["L3"]["GBps"]
    return "DRAM", ceil["DRAM"]["GBps"]


def fmt_us(v):
    if v is None:
        return "—"
    if v < 10:
        return f"{v:.2f}"
    if v < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_err(e, dtype):
    if e is None:
        return "—"
    bad = e > (1e-3 if dtype == "float32" else 1e-9)
    s = "inf" if e == float("inf") else f"{e:.1e}"
    return f"**{s} WRONG**" if bad else s


def render(results, args):
    lines = []
    first = results[0]["info"]
    lines.append("## simdnorm benchmark")
    lines.append("")
    lines.append(f"- CPU: {first['cpu']} ({first['cpus_usable']} usable CPUs), {first['platform']}")
    lines.append(
        f"- caches: L2 {first['L2_bytes'] >> 10} KiB/core, L3 {first['L3_bytes'] >> 20} MiB; Python {first['python']}"
    )
    lines.append(
        f"- simdnorm {first['simdnorm']} ({first['simdnorm_path']}); current_isa() = {first['isa_default']}; "
        f"available_isas() = {first['isas_available']}"
    )
    lines.append(
        f"- numpy {first['numpy']}; torch {first.get('torch', 'not requested')}; "
        f"onnxruntime {first.get('onnxruntime', 'not requested')}"
        + (f" (onnx {first['onnx']})" if "onnx" in first else "")
    )
    lines.append(
        f"- dtype {','.join(args.dtypes) if hasattr(args, 'dtypes') else '?'}; medians of "
        f"{args.repeat} samples, each a loop of >= {args.sample_ms} ms; µs per call"
    )
    for result in results:
        info = result["info"]
        t = info["threads"]
        lines.append("")
        lines.append(
            f"### threads = {t} (simdnorm.get_num_threads() = {info['simdnorm_threads']}"
            + (f", torch {info['torch_threads']}" if "torch_threads" in info else "")
            + (", ORT intra_op_num_threads " + str(t) if "onnx" in info else "")
            + ")"
        )
        lines.append("")
        floors = "; ".join(f"{k} {v:.0f} ns" for k, v in result["floors_ns"].items())
        lines.append(f"Floors: {floors}")
        load = info.get("background_load_cores")
        if load is not None:
            warn = " — WARNING: the machine was busy, numbers are noisy" if load > 0.25 else ""
            lines.append(f"Background CPU load from other processes during this run: {load:.2f} cores{warn}")
        ceil = "; ".join(
            f"{lvl} ({v['bytes_per_copy'] / 2**20:.2f} MiB copied) {v['GBps']:.1f} GB/s"
            for lvl, v in result["ceilings"].items()
        )
        lines.append(f"np.copyto ceilings (bytes read + written / s, {t} thread(s)): {ceil}")
        lines.append("")
        isas = info["isas_measured"]
        base = f"simdnorm[{info['isa_ratio_base']}]"
        peers = [p for p in PEERS if p in args.peers]
        one = any("scaling" in row for row in result["rows"])
        header = ["case"] + [f"sn {i} µs" for i in isas]
        header += [f"own loop: sn {t} / 1 thread µs", "speed-up"] if one else []
        header += [f"{p} µs" for p in peers]
        header += [f"{p}/sn" for p in peers]
        header += ["copy µs", "sn/copy", "sn GB/s", "% copy", "max abs err (sn ISAs / peers)"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|")
        for row in result["rows"]:
            us = row["us"]
            cells = [row["case"]]
            cells += [fmt_us(us.get(f"simdnorm[{i}]")) for i in isas]
            b = us.get(base)
            if one:
                own = row.get("scaling", {})
                many, single = own.get(SCALED), own.get(ONE_THREAD)
                cells += [f"{fmt_us(many)} / {fmt_us(single)}", f"{single / many:.2f}" if (single and many) else "—"]
            cells += [fmt_us(us.get(p)) if p in us else ("n/a" if p in row["skipped"] else "—") for p in peers]
            for p in peers:
                cells.append(f"{us[p] / b:.2f}" if (b and p in us) else "—")
            copy_us = us.get("copy")
            cells.append(fmt_us(copy_us))
            cells.append(f"{b / copy_us:.2f}" if (b and copy_us) else "—")
            if b:
                gbps = row["bytes"] / (b * 1e3)
                lvl, cgb = ceiling_for(row, result)
                cells += [f"{gbps:.1f}", f"{100 * gbps / cgb:.0f}% {lvl}"]
            else:
                cells += ["—", "—"]
            errs_sn = "/".join(fmt_err(row["err"].get(f"simdnorm[{i}]"), row["dtype"]) for i in isas)
            errs_peer = "/".join(fmt_err(row["err"].get(p), row["dtype"]) for p in peers if p in row["err"])
            cells.append(errs_sn + (" · " + errs_peer if errs_peer else ""))
            lines.append("| " + " | ".join(cells) + " |")
        skipped = {}
        for row in result["rows"]:
            for impl, why in row["skipped"].items():
                skipped.setdefault((impl, why), []).append(row["case"])
        if skipped:
            lines.append("")
            lines.append("Not measured:")
            for (impl, why), names in skipped.items():
                more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
                lines.append(f"- {impl}: {why} — {', '.join(names[:3])}{more}")
    lines.append("")
    lines.append(
        f"Ratios are peer time / {results[0]['info']['isa_ratio_base']} time (> 1: simdnorm faster). "
        "GB/s counts x read once + y written once (+ parameters); % copy compares it with the np.copyto "
        "ceiling for the level the working set (x + y) fits in. copy µs = one np.copyto of x into a "
        "preallocated array (out= rows) or x.copy() (rows that allocate their output), timed in the same "
        "interleaved loop: the 1-read-1-write floor of that case on one thread; sn/copy = simdnorm time over it. "
        "n/a = peer cannot run this case "
        "(see 'Not measured'); — = not applicable (out= rows time simdnorm alone; fold rows time it "
        "against NumPy on the same pre-folded scale / shift). module rows call simdnorm.LayerNorm / RMSNorm / "
        "a frozen BatchNorm object (PyTorch: the torch.nn module on a tensor); streaming rows are one "
        "RunningStats call per sample (NumPy: the same Welford update in float64)."
    )
    accuracy = results[0].get("accuracy")
    if accuracy:
        lines += ["", "### Accuracy: float32 max abs error vs float64 on c + N(0, 1)", "", render_accuracy(accuracy)]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# --compare and --plot


def load_results(path):
    """The results of a bench_norms.py --json file (or one result); ValueError when it is not one."""
    with open(path) as f:
        data = json.load(f)
    results = data.get("results", [data]) if isinstance(data, dict) else None
    if not isinstance(results, list) or not all(isinstance(r, dict) and "rows" in r for r in results):
        raise ValueError("not a bench_norms.py --json result")
    return results


def compare(old_path, new_path, threshold, fail):
    old, new = load_results(old_path), load_results(new_path)

    def index(results):
        out = {}
        for res in results:
            for row in res["rows"]:
                for impl, us in row["us"].items():
                    out[(row["case"], row["threads"], impl)] = us
        return out

    a, b = index(old), index(new)
    common = sorted(set(a) & set(b))
    slower, faster = [], []
    for key in common:
        change = 100.0 * (b[key] / a[key] - 1.0)
        if change > threshold:
            slower.append((change, key))
        elif change < -threshold:
            faster.append((change, key))
    print(f"compare {old_path} -> {new_path}: {len(common)} common measurements, threshold {threshold:g}%")
    for title, items in (("Slower", sorted(slower, reverse=True)), ("Faster", sorted(faster))):
        print(f"\n### {title} by more than {threshold:g}%: {len(items)}\n")
        if items:
            print("| case | threads | impl | old µs | new µs | change |")
            print("|---|---:|---|---:|---:|---:|")
            for change, key in items:
                print(f"| {key[0]} | {key[1]} | {key[2]} | {fmt_us(a[key])} | {fmt_us(b[key])} | {change:+.1f}% |")
    only_old, only_new = len(set(a) - set(b)), len(set(b) - set(a))
    if only_old or only_new:
        print(f"\n({only_old} measurements only in OLD, {only_new} only in NEW)")
    return 1 if (fail and slower) else 0


def plot(results, path):
    """Horizontal bars per case: each peer's time over simdnorm's (default ISA), log scale, one panel
    per thread count; 1 = as fast, right of it simdnorm is faster. The copy floor is drawn the same
    way (copy time / simdnorm time: 1 = simdnorm moves its data as fast as np.copyto)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        print(f"--plot: skipped, matplotlib is not importable ({type(e).__name__}: {e})", file=sys.stderr)
        return
    others = [p for p in PEERS if any(p in row["us"] for r in results for row in r["rows"])] + ["copy"]
    n = len(results)
    height = max(4.0, 0.065 * len(others) * max(len(r["rows"]) for r in results) + 1.5)
    fig, axes = plt.subplots(1, n, figsize=(8 * n, height), squeeze=False)
    for ax, result in zip(axes[0], results):
        base = f"simdnorm[{result['info']['isa_ratio_base']}]"
        rows = [row for row in result["rows"] if base in row["us"]]
        width = 0.8 / len(others)
        for j, impl in enumerate(others):
            ys = [i + j * width for i in range(len(rows))]
            vals = [row["us"][impl] / row["us"][base] if impl in row["us"] else 0 for row in rows]
            ax.barh(ys, vals, height=width, label=f"{impl} / simdnorm")
        ax.set_yticks([i + 0.4 - width / 2 for i in range(len(rows))])
        ax.set_yticklabels([row["case"] for row in rows], fontsize=6)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("peer time / simdnorm time (median, log scale; > 1: simdnorm faster)")
        ax.set_title(
            f"threads = {result['info']['threads']}, simdnorm {result['info']['isa_ratio_base']} "
            f"({result['info']['cpu']})",
            fontsize=9,
        )
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot written to {path}", file=sys.stderr)
